# Copyright (c) um-mae contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn as nn

from um_mae.models.utils import loads_checkpoint, official_init_


@pytest.mark.parametrize('init_cfg,expected', [
    (None, False),
    (dict(type='Pretrained', checkpoint='x'), True),
    (dict(type='CheckedPretrained', checkpoint='x'), True),
    # the random arm of a transfer study: nothing to load
    (dict(type='CheckedPretrained', checkpoint=None), False),
    (dict(type='Xavier', layer='Linear'), False),
    ([dict(type='Constant', val=1),
      dict(type='Pretrained', checkpoint='y')], True),
])
def test_loads_checkpoint(init_cfg, expected):
    assert loads_checkpoint(init_cfg) is expected


def test_official_init():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(8, 64, 3), nn.LayerNorm(64), nn.Linear(64, 256))
    for p in m.parameters():
        nn.init.constant_(p, 3.)
    official_init_(m)
    conv, ln, fc = m
    assert torch.equal(conv.bias, torch.zeros(64))
    assert conv.weight.std().item() == pytest.approx(
        math.sqrt(2 / (9 * 64)), rel=0.1)
    assert torch.equal(ln.weight, torch.ones(64))
    assert torch.equal(ln.bias, torch.zeros(64))
    bound = math.sqrt(6 / (64 + 256))  # xavier uniform
    assert fc.weight.abs().max().item() <= bound
    assert fc.weight.std().item() == pytest.approx(bound / math.sqrt(3),
                                                   rel=0.1)
    assert torch.equal(fc.bias, torch.zeros(256))
