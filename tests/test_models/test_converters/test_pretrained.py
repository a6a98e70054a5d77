# Copyright (c) um-mae contributors. All rights reserved.
"""Checked loading of pre-trained backbones (``CheckedPretrained``): our
own and the official UM-MAE checkpoints, partial loads, wrong files."""
import uuid

import pytest
import torch
from conftest import PVT_FIXTURE_ARCH, SWIN_FIXTURE_ARCH
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.backbones import (UMPVT, UMSwinTransformer, UMViT,
                                     WindowedViT)
from um_mae.models.converters import (convert_official_pvt,
                                      convert_official_swin, detect_format,
                                      load_pretrained, unwrap)

# a 4-block ViT on 64-px images (4x4 tokens of 16 px)
VIT_ARCH = dict(
    embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=128)
UMMAE_PVT_DEMO = 'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py'


def _build(cfg):
    """Build in mmpretrain's scope, whatever scope another test left."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def _save(tmp_path, checkpoint):
    path = str(tmp_path / f'{uuid.uuid4().hex}.pth')
    torch.save(checkpoint, path)
    return path


def _checked(cls, path, prefix='backbone.', **kwargs):
    """A backbone built with the CheckedPretrained initializer, initialized."""
    model = cls(
        init_cfg=dict(
            type='CheckedPretrained', checkpoint=path, prefix=prefix),
        **kwargs)
    model.init_weights()
    return model


def _assert_loaded(model, state_dict, keys):
    own = model.state_dict()
    assert keys, 'nothing to compare'
    for key in keys:
        torch.testing.assert_close(own[key], state_dict[key].to(own[key]))


def _dense_pvt_demo(**kwargs):
    return dict(
        arch='demo',
        img_size=128,
        out_indices=(0, 1, 2, 3),
        learnable_pos_embed=True,
        **kwargs)


def test_own_ummae_pretraining_checkpoint(tmp_path):
    cfg = Config.fromfile(UMMAE_PVT_DEMO)
    ummae = _build(cfg.model)
    sd = ummae.state_dict()
    assert any(k.startswith('neck.') for k in sd)
    path = _save(tmp_path, dict(state_dict=sd, meta=dict(epoch=10)))

    backbone = _checked(UMPVT, path, **_dense_pvt_demo())
    keys = [k for k in backbone.state_dict()]
    _assert_loaded(
        backbone, {
            k[len('backbone.'):]: v
            for k, v in sd.items() if k.startswith('backbone.')
        }, keys)

    report = load_pretrained(
        UMPVT(**_dense_pvt_demo()), path, prefix='backbone')
    assert report['missing'] == []
    assert report['unexpected'] == ['vis_mask_token']
    assert len(report['matched']) == len(keys)


def test_official_init_does_not_overwrite_loaded_weights(tmp_path):
    src = UMPVT(**_dense_pvt_demo())
    with torch.no_grad():
        for p in src.parameters():
            p.fill_(0.5)  # no initializer draws a constant 0.5
    path = _save(tmp_path, {
        'backbone.' + k: v
        for k, v in src.state_dict().items()
    })
    model = _checked(UMPVT, path, **_dense_pvt_demo())
    for name, p in model.named_parameters():
        assert torch.all(p == 0.5), name


def test_own_classifier_checkpoint(tmp_path):
    classifier = _build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='UMPVT',
                arch='demo',
                img_size=128,
                out_type='avg_featmap',
                learnable_pos_embed=True),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=128)))
    sd = classifier.state_dict()
    path = _save(tmp_path, dict(state_dict=sd))
    report = load_pretrained(
        UMPVT(**_dense_pvt_demo()), path, prefix='backbone.')
    assert report['missing'] == []
    assert sorted(report['unexpected']) == ['fc_norm.bias', 'fc_norm.weight']


@pytest.mark.parametrize('name,cls,kwargs,converter', [
    ('ft_pvt.pt', UMPVT, dict(arch=PVT_FIXTURE_ARCH,
                              learnable_pos_embed=True), convert_official_pvt),
    ('ft_swin.pt', UMSwinTransformer,
     dict(arch=SWIN_FIXTURE_ARCH, window_size=16), convert_official_swin),
])
def test_official_finetuned_checkpoint_parity(reference, tmp_path, name, cls,
                                              kwargs, converter):
    ref = reference(name)
    path = _save(tmp_path, dict(model=ref['state_dict'], epoch=99))
    # prefix is ignored for official checkpoints (their keys have none)
    model = _checked(cls, path, out_indices=(0, 1, 2, 3), **kwargs)
    model.double().eval()
    with torch.no_grad():
        feats = model(ref['img'].double())
    for feat, expected in zip(feats, ref['stage_feats']):
        torch.testing.assert_close(
            feat, expected.double(), rtol=1e-6, atol=1e-5)

    report = load_pretrained(
        cls(out_indices=(0, 1, 2, 3), **kwargs), path, prefix='backbone.')
    assert report['source'].startswith('UM-MAE') and \
        report['source'].endswith('(official)')
    assert report['missing'] == []
    # fc_norm belongs to the classifier mode; the head is left out
    assert sorted(report['unexpected']) == ['fc_norm.bias', 'fc_norm.weight']
    assert len(report['matched']) == len(converter(ref['state_dict'])) - 2


@pytest.mark.parametrize('name,arch,cls,kwargs', [
    ('mae_pvt.pt', 'pvt', UMPVT,
     dict(arch=PVT_FIXTURE_ARCH, learnable_pos_embed=True)),
    ('mae_swin.pt', 'swin', UMSwinTransformer, dict(arch=SWIN_FIXTURE_ARCH)),
])
def test_official_pretraining_checkpoint(reference, tmp_path, name, arch, cls,
                                         kwargs):
    ref = reference(name)
    assert detect_format(ref['state_dict']).official_arch == arch
    path = _save(tmp_path, dict(model=ref['state_dict']))
    model = cls(out_indices=(0, 1, 2, 3), **kwargs)
    report = load_pretrained(model, path)
    # every backbone tensor comes from the checkpoint; the decoder and the
    # secondary-masking token are not used
    assert report['missing'] == []
    assert report['unexpected'] == ['vis_mask_token']
    converted = {
        'pvt': convert_official_pvt,
        'swin': convert_official_swin
    }[arch](
        ref['state_dict'])
    _assert_loaded(model, converted, report['matched'])


def _mmpretrain_vit(kind):
    vit = dict(arch=VIT_ARCH, img_size=64, patch_size=16)
    if kind == 'mae':
        return dict(
            type='MAE',
            backbone=dict(type='MAEViT', mask_ratio=0.75, **vit),
            neck=dict(
                type='MAEPretrainDecoder',
                num_patches=16,
                patch_size=16,
                embed_dim=32,
                decoder_embed_dim=16,
                decoder_depth=1,
                decoder_num_heads=2),
            head=dict(
                type='MAEPretrainHead',
                norm_pix=True,
                patch_size=16,
                loss=dict(type='PixelReconstructionLoss', criterion='L2')))
    if kind == 'mocov3':
        mlp = dict(
            type='NonLinearNeck',
            hid_channels=64,
            out_channels=16,
            num_layers=2,
            with_bias=False,
            with_last_bn=True,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=False)
        return dict(
            type='MoCoV3',
            base_momentum=0.01,
            backbone=dict(type='MoCoV3ViT', stop_grad_conv1=True, **vit),
            neck=dict(in_channels=32, **mlp),
            head=dict(
                type='MoCoV3Head',
                predictor=dict(in_channels=16, **mlp),
                loss=dict(type='CrossEntropyLoss', loss_weight=0.4),
                temperature=0.2))
    return dict(  # supervised
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer', **vit),
        head=dict(
            type='VisionTransformerClsHead', num_classes=10, in_channels=32))


@pytest.mark.parametrize('kind', ['mae', 'mocov3', 'supervised'])
def test_vitdet_from_mmpretrain_vit(tmp_path, kind):
    """mmpretrain's ``{'state_dict': {'backbone.*'}}`` releases, exactly:
    our blocks against mmpretrain's own layers (one window covers the
    4 x 4 grid)."""
    torch.manual_seed(0)
    model = _build(_mmpretrain_vit(kind))
    with torch.no_grad():  # no zero / one tensors left
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    sd = model.state_dict()
    if kind == 'mocov3':  # the momentum encoder is not the one transferred
        assert any(k.startswith('momentum_encoder.') for k in sd)
    path = _save(tmp_path, dict(state_dict=sd))
    vitdet = _checked(
        WindowedViT, path, arch=VIT_ARCH, img_size=64, window_size=4)

    report = load_pretrained(
        WindowedViT(arch=VIT_ARCH, img_size=64, window_size=4), path,
        'backbone.')
    # the ViT tensors load; the windowed-attention biases are new
    assert report['missing'] and all('relative_position_bias_table' in k
                                     for k in report['missing'])
    assert {'cls_token', 'ln1.weight'} <= set(report['unexpected'])
    assert 'layers.3.ffn.layers.1.weight' in report['matched']

    vitdet.double().eval()
    vit = model.backbone.double()
    vit.eval()
    img = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        x, hw = vitdet.patch_embed(img)
        ref, _ = vit.patch_embed(img)
        torch.testing.assert_close(x, ref, rtol=1e-10, atol=1e-10)
        x = x + vitdet.pos_embed[:, 1:]
        ref = ref + vit.pos_embed[:, 1:]
        for ours, theirs in zip(vitdet.layers, vit.layers):
            x, ref = ours(x, hw), theirs(ref)
            torch.testing.assert_close(x, ref, rtol=1e-10, atol=1e-10)


def test_partial_load_is_refused(reference, tmp_path, mm_log):
    ref = reference('mae_vit.pt')  # 2 blocks, 32 channels, 4 heads, 64 px
    assert detect_format(ref['state_dict']).name == 'UM-MAE ViT (official)'
    path = _save(tmp_path, dict(model=ref['state_dict']))
    arch = dict(VIT_ARCH, num_heads=4)  # 4 blocks
    with pytest.raises(ValueError) as info:
        load_pretrained(WindowedViT(arch=arch, img_size=64), path)
    msg = str(info.value)
    assert '\n' not in msg
    assert f'{path} (UM-MAE ViT (official)) does not fit WindowedViT' \
        in msg
    assert '24 of 51 trunk tensors of WindowedViT would stay unfilled ' \
        '(layers.2.ln1.weight' in msg
    assert 'the checkpoint has 2 blocks, WindowedViT 4' in msg
    assert msg.endswith('pass allow_partial=True to load it anyway')

    # the opt-out loads, warns, and leaves the rest randomly initialized
    model = WindowedViT(
        arch=arch,
        img_size=64,
        init_cfg=dict(
            type='CheckedPretrained', checkpoint=path, allow_partial=True))
    model.init_weights()
    assert 'loaded anyway: allow_partial=True' in mm_log()
    assert torch.equal(model.layers[1].attn.qkv.weight,
                       ref['state_dict']['blocks.1.attn.qkv.weight'])
    assert model.layers[2].attn.qkv.weight.std() < 0.05  # trunc-normal .02
    assert model.layers[2].attn.qkv.bias.abs().sum() == 0


def test_report_is_logged(tmp_path, mm_log):
    src = UMPVT(**_dense_pvt_demo())
    path = _save(tmp_path, {
        'backbone.' + k: v
        for k, v in src.state_dict().items()
    })
    load_pretrained(
        UMPVT(**_dense_pvt_demo(with_vis_mask_token=True)),
        path,
        prefix='backbone.')
    out = mm_log()
    n = len(src.state_dict())
    assert 'um_mae / mmpretrain layout (a UMPVT (PVT) backbone), keys ' \
        "under 'backbone.'" in out
    assert f'filled {n}/{n + 1} tensors' in out
    assert 'new in UMPVT, initialized by it (1): vis_mask_token' in out


def test_wrong_prefix(tmp_path):
    path = _save(tmp_path, dict(state_dict={'backbone.x': torch.zeros(1)}))
    with pytest.raises(
            ValueError,
            match=r"starts with prefix 'encoder\.' \(its keys start with "
            r"backbone\.\).*under no prefix does it fill the trunk of UMPVT"):
        load_pretrained(UMPVT(arch='demo'), path, prefix='encoder.')


def test_nothing_matched(tmp_path):
    neck_only = {'neck.decoder_embed.weight': torch.zeros(2, 2)}
    path = _save(tmp_path, neck_only)
    with pytest.raises(
            ValueError,
            match=r'\(um_mae / mmpretrain layout, keys under \'neck\.\': '
            r'decoder_embed\.weight\) is a key of UMPVT'):
        load_pretrained(UMPVT(arch='demo'), path, prefix='neck.')


def test_shape_mismatch_names_the_fitting_arch(tmp_path):
    demo = UMPVT(**_dense_pvt_demo())
    path = _save(tmp_path, {
        'backbone.' + k: v
        for k, v in demo.state_dict().items()
    })
    with pytest.raises(ValueError) as info:
        load_pretrained(
            UMPVT(arch='small', out_indices=(0, 1, 2, 3)), path, 'backbone.')
    msg = str(info.value)
    assert 'patch_embed.projection.weight: checkpoint (16, 3, 4, 4) vs ' \
        'model (64, 3, 4, 4)' in msg
    assert "build UMPVT with arch='demo'" in msg


def test_shape_mismatch_without_a_fitting_arch(reference, tmp_path):
    ref = reference('ft_swin.pt')
    path = _save(tmp_path, dict(model=ref['state_dict']))
    with pytest.raises(
            ValueError,
            match='none of the archs of '
            r'UMSwinTransformer fits; pass arch=dict\(\.\.\.\)'):
        load_pretrained(UMSwinTransformer(arch='demo'), path)


def test_unwrap_and_detect():
    sd = {'module.blocks.0.attn.qkv.weight': torch.zeros(1), 'step': 3}
    assert list(unwrap(dict(model=sd))) == ['blocks.0.attn.qkv.weight']
    # our own keys are never taken for official ones
    assert detect_format({'stages.0.blocks.0.attn.sr.weight':
                          torch.zeros(1)}) is None
    with pytest.raises(TypeError, match='must hold a dict'):
        unwrap([1])


def test_umvit_keeps_loaded_weights(tmp_path):
    """MAEViT re-draws pos_embed / cls_token in init_weights; UMViT must not
    after loading a checkpoint."""
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    cfg = dict(
        type='UMViT',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64),
        img_size=64,
        patch_size=16,
        with_vis_mask_token=True)
    src = PRETRAIN_MODELS.build(cfg)
    src.init_weights()
    path = str(tmp_path / 'umvit.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v
                for k, v in src.state_dict().items()
            }
        }, path)
    dst = PRETRAIN_MODELS.build(
        dict(
            cfg,
            init_cfg=dict(
                type='CheckedPretrained', checkpoint=path,
                prefix='backbone.')))
    dst.init_weights()
    for key, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value), key
    assert not dst.pos_embed.requires_grad  # MAE's fixed sin-cos table

    # fine-tuning (the shipped ViT fine-tune config) learns the loaded table
    tuned = PRETRAIN_MODELS.build(
        dict(
            cfg,
            learnable_pos_embed=True,
            out_type='avg_featmap',
            init_cfg=dict(
                type='CheckedPretrained', checkpoint=path,
                prefix='backbone.')))
    tuned.init_weights()
    assert tuned.pos_embed.requires_grad
    assert torch.equal(tuned.pos_embed, src.pos_embed)
    tuned(torch.rand(1, 3, 64, 64))[0].pow(2).sum().backward()
    assert tuned.pos_embed.grad is not None and tuned.pos_embed.grad.any()


def test_swin_checkpoint_into_pvt_is_refused(tmp_path):
    """The widths of the demo archs match; the load must still stop."""
    swin = UMSwinTransformer(arch='demo')
    path = _save(tmp_path, {
        'backbone.' + k: v
        for k, v in swin.state_dict().items()
    })
    with pytest.raises(ValueError) as info:
        _checked(UMPVT, path, arch='demo')
    msg = str(info.value)
    assert '\n' not in msg
    assert f'{path} (um_mae / mmpretrain layout (a UMSwinTransformer ' \
        "(Swin) backbone), keys under 'backbone.')" in msg
    assert 'UMPVT' in msg


@pytest.mark.parametrize('cls,kwargs', [
    (WindowedViT, dict(arch=VIT_ARCH, img_size=64)),
    (UMViT, dict(arch=VIT_ARCH, img_size=64)),
])
@pytest.mark.parametrize(
    'init_cfg', [None, dict(type='CheckedPretrained', checkpoint=None)])
def test_random_arm_is_random(cls, kwargs, init_cfg):
    """No checkpoint: the documented random init, never zeros."""
    torch.manual_seed(0)
    model = cls(init_cfg=init_cfg, **kwargs)
    model.init_weights()
    if cls is UMViT:  # MAE's fixed sin-cos table
        from mmpretrain.models.utils import build_2d_sincos_position_embedding
        expected = build_2d_sincos_position_embedding(
            4, VIT_ARCH['embed_dims'], cls_token=True)
        torch.testing.assert_close(model.pos_embed, expected)
    else:  # truncated normal, std 0.02, also the blocks' linear layers
        pos = model.pos_embed
        assert pos.abs().min() > 0 and 0.01 < pos.std() < 0.03
        qkv = model.layers[0].attn.qkv
        assert 0.015 < qkv.weight.std() < 0.025 and not qkv.bias.any()
        assert not model.layers[0].attn.relative_position_bias_table.any()


@pytest.mark.parametrize('cls', [WindowedViT, UMViT])
def test_failed_load_raises(tmp_path, cls):
    bad = tmp_path / 'model.pth'
    bad.write_text('<html>404</html>')
    model = cls(
        arch=VIT_ARCH,
        img_size=64,
        init_cfg=dict(type='CheckedPretrained', checkpoint=str(bad)))
    with pytest.raises(ValueError, match='is not a checkpoint'):
        model.init_weights()


def test_prefix_hint_names_a_prefix_that_fills_the_trunk(tmp_path):
    src = UMPVT(arch='demo')
    path = _save(tmp_path, {
        'model.backbone.' + k: v
        for k, v in src.state_dict().items()
    })
    with pytest.raises(
            ValueError,
            match="prefix='model.backbone.' fills every trunk tensor of "
            'UMPVT'):
        load_pretrained(UMPVT(arch='demo'), path, prefix='backbone.')
    report = load_pretrained(UMPVT(arch='demo'), path, 'model.backbone.')
    assert report['unfilled'] == [] and report['changes_math'] == []


def test_missing_pos_embed_hint_fits_the_backbone(tmp_path):
    """Only WindowedViT can be built without a position table."""
    from um_mae.models.backbones.pvt import UMPVT
    state = UMPVT(arch='demo', img_size=128).state_dict()
    path = str(tmp_path / 'no-pos-embed.pth')
    torch.save({k: v for k, v in state.items() if k != 'pos_embed'}, path)
    with pytest.raises(ValueError) as info:
        load_pretrained(UMPVT(arch='demo', img_size=128), path)
    msg = str(info.value)
    assert 'use_abs_pos_embed' not in msg, msg
    assert 'which UMPVT always has (pos_embed)' in msg
    assert 'pass a checkpoint of UMPVT' in msg
