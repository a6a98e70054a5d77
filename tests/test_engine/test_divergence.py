# Copyright (c) um-mae contributors. All rights reserved.
"""A diverging run: no checkpoint of diverged weights is kept, and the stop's
advice (``--resume`` with a lower lr in ``--cfg-options``) works: the lr
given with ``--resume`` replaces the checkpoint's, and this is logged.

``tools/train.py`` runs in this process on the shipped MAE demo config (8
images: one iteration per epoch); the diverging lr comes in through
``--cfg-options`` as a user would type it.
"""
import glob
import importlib.util
import os.path as osp

import pytest
import torch

from um_mae.toolkit.demo_data import make_pretrain_images

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAE_DEMO = 'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py'


def _train(work, images, *options, resume=False):
    path = osp.join(REPO, 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('train_tool_nan', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([
        MAE_DEMO, '--work-dir', work, '--data-root', images,
        *(['--resume'] if resume else []), '--cfg-options',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', *options
    ])


def _log(work):
    text = ''
    for path in sorted(glob.glob(osp.join(work, '*', '*.log'))):
        with open(path) as f:
            text += f.read()
    return text


def _last(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read()


def test_divergence_is_not_kept_and_a_lower_lr_resumes(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    images, work = str(tmp_path / 'images'), str(tmp_path / 'work')
    make_pretrain_images(images, num_images=8, size=128)
    _train(work, images, 'train_cfg.max_epochs=1')
    first = osp.join(work, 'epoch_1.pth')
    assert _last(work) == first

    # continue with a diverging lr: it is applied, the run stops, and the
    # checkpoint saved from diverged weights is not kept
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _train(work, images, 'train_cfg.max_epochs=5',
               'optim_wrapper.optimizer.lr=1e4', resume=True)
    err = capsys.readouterr().err
    assert e.value.code == 1, err[-3000:]
    assert 'resuming with the configured learning rate 10000 instead of the ' \
        "checkpoint's 0.001" in _log(work)
    assert err.startswith('error: non-finite ')
    assert f'The last checkpoint kept is {first}' in err
    assert '`--resume --cfg-options optim_wrapper.optimizer.lr=1000`' in err
    assert _last(work) == first
    kept = sorted(osp.basename(p) for p in glob.glob(osp.join(work, '*')))
    assert [n for n in kept if n.endswith('.pth')] == ['epoch_1.pth'], kept
    state = torch.load(first, weights_only=False)
    assert all(v.abs().max() < 100 for v in state['state_dict'].values()
               if v.is_floating_point())

    # the advice: --resume with a lower lr continues from the kept one
    _train(work, images, 'train_cfg.max_epochs=2',
           'optim_wrapper.optimizer.lr=1e-4', resume=True)
    assert "learning rate 0.0001 instead of the checkpoint's 0.001" in _log(
        work)
    assert _last(work) == osp.join(work, 'epoch_2.pth')
    state = torch.load(_last(work), weights_only=False)
    for group in state['optimizer']['param_groups']:
        assert group['initial_lr'] == pytest.approx(1e-4)
        assert 0 < group['lr'] <= 1e-4
    cosine = state['param_schedulers'][1]
    assert cosine['base_values'] == pytest.approx(
        [1e-4] * len(cosine['base_values']))
    assert all(torch.isfinite(v).all()
               for v in state['state_dict'].values())
