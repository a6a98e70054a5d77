# Copyright (c) um-mae contributors. All rights reserved.
"""Weight-decay groups of every pre-training recipe equal the official ones.

The official main_pretrain.py groups the parameters with timm's
``add_weight_decay`` and no skip list: a trainable parameter gets no weight
decay when it is 1-D or its name ends in ``.bias``; every other one
(tokens included) gets the recipe's weight decay. Checked parameter by
parameter on the real-size models (built on the meta device: names,
shapes and ``requires_grad`` are all the rule reads).
"""
import glob
import os.path as osp

import pytest
import torch
from conftest import load_config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

import um_mae  # noqa: F401

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
PRETRAIN = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', 'pretrain', '**', '*.py'), recursive=True)
    if '_base_' not in p and 'demo' not in osp.basename(p))
_MODELS = {}


def _model(cfg):
    """The recipe's model, built once per distinct model config."""
    key = repr(cfg.model.to_dict())
    if key not in _MODELS:
        init_default_scope('mmpretrain')
        with torch.device('meta'):
            _MODELS[key] = MODELS.build(cfg.model)
    return _MODELS[key]


def official_decay(name, param, weight_decay):
    """timm add_weight_decay with an empty skip list."""
    if param.ndim <= 1 or name.endswith('.bias'):
        return 0.
    return weight_decay


@pytest.mark.parametrize('recipe', PRETRAIN)
def test_groups_equal_the_official_ones(recipe):
    cfg = load_config(recipe)
    model = _model(cfg)
    wrapper_cfg = cfg.optim_wrapper.to_dict()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=wrapper_cfg.pop('constructor',
                                 'DefaultOptimWrapperConstructor'),
            optim_wrapper_cfg=wrapper_cfg,
            paramwise_cfg=wrapper_cfg.pop('paramwise_cfg', None)))
    groups = []
    constructor.add_params(groups, model)
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    base_lr = cfg.optim_wrapper.optimizer.lr
    decay_of = {}
    for group in groups:
        for p in group['params']:
            assert id(p) not in decay_of, 'a parameter is in two groups'
            decay_of[id(p)] = group.get('weight_decay', base_wd)
            # no lr multipliers in pre-training
            assert group.get('lr', base_lr) == base_lr
    wrong = []
    tokens = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        expected = official_decay(name, param, base_wd)
        if decay_of.get(id(param)) != expected:
            wrong.append(f'{name}: {decay_of.get(id(param))} (official '
                         f'{expected})')
        if name.split('.')[-1].endswith('token'):
            tokens.append(name)
    assert not wrong, '\n'.join(wrong)
    # the case: tokens are decayed as any other 2-D+ tensor
    for name in tokens:
        param = dict(model.named_parameters())[name]
        assert decay_of[id(param)] == base_wd, name
