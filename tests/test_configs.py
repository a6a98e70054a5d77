# Copyright (c) um-mae contributors. All rights reserved.
"""Every shipped config loads and builds its model in its own toolbox."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import um_mae  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def models_registry(scope):
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        raise AssertionError(f'unexpected default_scope {scope!r}')
    return MODELS


def test_configs_found():
    assert len(CONFIGS) >= 1


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    model = models_registry(cfg.default_scope).build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    # the training recipe is complete
    assert cfg.train_dataloader.batch_size > 0
    assert cfg.get('optim_wrapper') is not None
    assert cfg.get('auto_scale_lr', {}).get('base_batch_size')
    if '/pretrain/' in path:
        # gradient clipping is one line away in every pre-training config
        assert 'clip_grad' in cfg.optim_wrapper
