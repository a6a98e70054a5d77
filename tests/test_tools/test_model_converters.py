# Copyright (c) um-mae contributors. All rights reserved.
"""tools/model_converters/ummae_official_to_ours.py: official fixtures,
other releases, and the files it must refuse."""
import errno
import importlib.util
import os
import os.path as osp
import sys

import pytest
import torch
from conftest import PVT_FIXTURE_ARCH
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.converters import convert, detect_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tool():
    path = osp.join(REPO, 'tools', 'model_converters',
                    'ummae_official_to_ours.py')
    spec = importlib.util.spec_from_file_location('ummae_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tool, monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', ['ummae_official_to_ours.py', *argv])
    tool.main()


def test_pretrain_checkpoint_to_ummae(tool, reference, tmp_path, monkeypatch,
                                      capsys):
    official = reference('mae_pvt.pt')['state_dict']
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'model': official, 'epoch': 199}, src)
    _run(tool, monkeypatch, str(src), str(dst), '--strict')
    assert 'arch: pvt, checkpoint kind: pretrain' in capsys.readouterr().out

    state_dict = torch.load(dst, weights_only=False)['state_dict']
    assert len(state_dict) == len(official) == 122
    model = MODELS.build(
        dict(
            type='UMMAE',
            backbone=dict(
                type='UMPVT', arch=PVT_FIXTURE_ARCH, with_vis_mask_token=True),
            neck=dict(
                type='MAEPyramidDecoder',
                in_channels=64,
                embed_dims=64,
                depth=1,
                num_heads=4),
            head=dict(
                type='MAEPretrainHead',
                patch_size=16,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    # exactly the model's keys: nothing missing, nothing extra
    assert set(state_dict) == set(model.state_dict())
    model.load_state_dict(state_dict, strict=True)
    # the decoder mask token is not taken for the backbone's
    assert torch.equal(state_dict['neck.mask_token'], official['mask_token'])
    assert torch.equal(state_dict['neck.in_norm.weight'],
                       official['norm.weight'])


def test_classifier_checkpoint_to_image_classifier(tool, reference):
    official = reference('ft_pvt.pt')['state_dict']
    state_dict, report = convert({'model': official})
    assert report['kind'] == 'classifier' and report['unused'] == []
    assert len(report['mapped']) == len(official) == 103
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='UMPVT',
                arch=PVT_FIXTURE_ARCH,
                out_type='avg_featmap',
                learnable_pos_embed=True),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    assert set(state_dict) == set(model.state_dict())
    assert report['mapped']['head.weight'] == 'head.fc.weight'
    assert report['mapped']['blocks.4.downsample.proj.weight'] == \
        'backbone.stages.3.downsample.projection.weight'
    assert report['mapped']['blocks.2.mlp.fc2.bias'] == \
        'backbone.stages.1.blocks.1.ffn.layers.1.bias'


def test_unknown_keys_are_reported_and_strict_fails(tool, reference, tmp_path,
                                                    monkeypatch, capsys):
    official = dict(reference('ft_pvt.pt')['state_dict'])
    official['module.extra.weight'] = torch.zeros(1)
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save(official, src)  # a bare state dict is accepted too
    with pytest.raises(SystemExit, match='unmapped keys'):
        _run(tool, monkeypatch, str(src), str(dst), '--strict')
    assert '1 source keys NOT mapped:\n  extra.weight' in \
        capsys.readouterr().out
    assert not dst.exists()
    _run(tool, monkeypatch, str(src), str(dst))
    assert len(torch.load(dst, weights_only=False)['state_dict']) == 103


def test_arch_detection(tool):
    assert detect_arch({'blocks.0.attn.sr.weight': 0}) == 'pvt'
    assert detect_arch({'blocks.0.attn.posmlp.0.weight': 0}) == 'swin'
    with pytest.raises(ValueError, match='add a rule to ARCH_RULES'):
        detect_arch({'conv.weight': 0})


def _moco_v3(src):
    """Write a MoCo v3 .pth.tar of a tiny ViT to ``src``; return the ViT."""
    vit = MODELS.build(
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=2,
                num_heads=2,
                feedforward_channels=64),
            img_size=32,
            patch_size=16))
    renames = {  # mmpretrain -> timm, in this order
        'patch_embed.projection': 'patch_embed.proj',
        'ffn.layers.0.0': 'mlp.fc1',
        'ffn.layers.1': 'mlp.fc2',
        'layers': 'blocks',
        'ln1': 'norm1',
        'ln2': 'norm2'
    }
    timm = {}
    for key, value in vit.state_dict().items():
        if key.startswith('ln1.'):
            key = 'norm.' + key[4:]
        for ours, theirs in renames.items():
            key = key.replace(ours, theirs)
        timm[key] = value
    state_dict = {f'module.base_encoder.{k}': v for k, v in timm.items()}
    state_dict.update({
        f'module.momentum_encoder.{k}': v.clone()
        for k, v in timm.items()
    })
    state_dict['module.predictor.0.weight'] = torch.zeros(4, 4)
    torch.save(dict(epoch=300, arch='vit_small', state_dict=state_dict), src)
    return vit


def test_other_release_becomes_a_backbone(tool, tmp_path, monkeypatch, capsys):
    """A MoCo v3 .pth.tar: the base encoder, as backbone.* keys."""
    src, dst = tmp_path / 'vit-s-300ep.pth.tar', tmp_path / 'ours.pth'
    vit = _moco_v3(src)
    _run(tool, monkeypatch, str(src), str(dst), '--strict')
    out = capsys.readouterr().out
    assert 'release: MoCo v3 (official, base encoder)' in out
    assert 'left out: MoCo v3 momentum encoder' in out
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert set(converted) == {'backbone.' + k for k in vit.state_dict()}
    for key, value in vit.state_dict().items():
        assert torch.equal(converted['backbone.' + key], value)


@pytest.mark.parametrize('keys,found', [
    (['backbone.stages.0.blocks.0.attn.sr.weight', 'neck.in_norm.weight'
      ], 'in um_mae / mmpretrain layout already'),
    ([
        'backbone.layers.0.attn.qkv.weight', 'neck.fpn_convs.0.conv.weight',
        'rpn_head.rpn_conv.weight', 'roi_head.bbox_head.fc_cls.weight'
    ], 'a detector / segmentor checkpoint'),
    (['conv1.weight', 'fc.weight'], 'cannot tell which release'),
])
def test_files_that_are_not_releases_are_refused(tool, tmp_path, monkeypatch,
                                                 capsys, keys, found):
    src, dst = tmp_path / 'model.pth', tmp_path / 'ours.pth'
    torch.save(dict(state_dict={k: torch.zeros(1) for k in keys}), src)
    with pytest.raises(SystemExit) as exit_info:
        _run(tool, monkeypatch, str(src), str(dst))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {src}: ') and found in err
    assert len(err.splitlines()[0]) == len(err.split('\n(set UM_MAE')[0])
    assert not dst.exists()


def test_bad_file_is_one_line(tool, tmp_path, monkeypatch, capsys):
    src, dst = tmp_path / 'model.pth', tmp_path / 'ours.pth'
    src.write_text('not a checkpoint')
    with pytest.raises(SystemExit):
        _run(tool, monkeypatch, str(src), str(dst))
    assert f'error: {src} is not a checkpoint (found a text file' in \
        capsys.readouterr().err
    assert not dst.exists()


def test_destination_errors_are_one_line_and_keep_the_old_file(
        tool, tmp_path, monkeypatch, capsys):
    src = tmp_path / 'vit-s-300ep.pth.tar'
    _moco_v3(src)
    (tmp_path / 'a-file').write_text('')
    cases = [
        (tmp_path, 'is a folder; give a file name'),
        (tmp_path / 'a-file' / 'ours.pth', 'its folder'),
    ]
    for dst, words in cases:
        with pytest.raises(SystemExit):
            _run(tool, monkeypatch, str(src), str(dst))
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot write '{dst}'") or (
            err.startswith(f"error: destination '{dst}'")), err
        assert words in err and 'Traceback' not in err
    # a missing folder is created
    dst = tmp_path / 'new' / 'ours.pth'
    _run(tool, monkeypatch, str(src), str(dst))
    good = dst.read_bytes()

    # the disk fills up while writing: the old file stays, no temporary
    def disk_full(obj, f, *args, **kwargs):
        f.write(b'half a checkpoint')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, 'save', disk_full)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        _run(tool, monkeypatch, str(src), str(dst))
    err = capsys.readouterr().err
    assert err.startswith(f'error: cannot use {dst}: the disk is full'), err
    assert dst.read_bytes() == good
    assert os.listdir(dst.parent) == ['ours.pth']
