# Copyright (c) um-mae contributors. All rights reserved.
"""Every shipped config loads and builds its model in its own toolbox."""
import copy
import glob
import os.path as osp
import subprocess

import pytest
from conftest import load_config
from mmengine.config import Config
from mmengine.registry import init_default_scope

import um_mae  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def _load(path: str) -> Config:
    """A copy of the config, parsed once per test process (the tests here
    read each config three times)."""
    return copy.deepcopy(load_config(osp.relpath(path, REPO)))


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


def _tracked_configs():
    """The configs git tracks: ``configs/**/*.py`` except ``_base_`` files
    (a ``_base_/`` folder or a ``_base_*.py`` name); None outside a
    checkout."""
    try:
        out = subprocess.run(['git', 'ls-files', '--', 'configs'],
                             cwd=REPO,
                             capture_output=True,
                             text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {
        p
        for p in out.split()
        if p.endswith('.py') and '_base_' not in p.split('/')[:-1]
        and not osp.basename(p).startswith('_base_')
    }


def test_configs_found():
    """Every config git tracks is on disk and among the tested ones (a lost
    file or a too narrow glob fails; planted: a tracked config deleted)."""
    tracked = _tracked_configs()
    if tracked is None:
        pytest.skip('not a git checkout: no list of tracked configs')
    tested = {osp.relpath(p, REPO).replace(osp.sep, '/') for p in CONFIGS}
    assert sorted(tracked - tested) == []
    assert len(tested) >= len(tracked) > 0


@pytest.mark.slow  # every config's full-size model
@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = _load(path)
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


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_declares_the_runtime_guarantees(path):
    """The hooks the README promises are in the config itself."""
    from um_mae.toolkit.cli import check_runtime_hooks
    cfg = _load(path)
    assert check_runtime_hooks(cfg) == []
    assert 'um_mae.engine.checkpoint_loading' in cfg.custom_imports.imports


@pytest.mark.dense  # loads the det / seg configs too
def test_pretrained_paths_name_a_shipped_recipe():
    """A `pretrained = 'work_dirs/<name>/...'` checkpoint is the output of
    a shipped config called <name> (e.g. the Mask R-CNN ViT-L one)."""
    names = {osp.splitext(osp.basename(p))[0] for p in CONFIGS}
    checked = 0
    for path in CONFIGS:
        pretrained = _load(path).get('pretrained')
        if isinstance(pretrained, str) and pretrained.startswith(
                'work_dirs/'):
            producer = pretrained.split('/')[1]
            assert producer in names, (path, pretrained)
            checked += 1
    assert checked >= 10
