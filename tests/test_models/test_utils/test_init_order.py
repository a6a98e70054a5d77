# Copyright (c) um-mae contributors. All rights reserved.
"""One initialisation order for every backbone and the pyramid decoder.

``RandomThenCheckpointInit``: the documented random init of every parameter,
then the checkpoint over it. Checked through both paths (no checkpoint; a
partial one with ``allow_partial=True``) for every module that follows it:

* after ``init_weights`` no tensor depends on the random numbers drawn at
  construction (PyTorch's construction defaults), except the ones a module
  documents as keeping them (``construction_init_keys``);
* a partial checkpoint fills its tensors exactly and leaves every other one
  at the value the random init gives without a checkpoint.
"""
import re
import uuid

import pytest
import torch
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.backbones import (UMPVT, UMSwinTransformer, UMViT,
                                     WindowedViT)
from um_mae.models.necks import MAEPyramidDecoder
from um_mae.models.utils import RandomThenCheckpointInit

_VIT = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
# every optional parameter built (tokens, pooled-feature norms, layer scale)
CASES = {
    UMPVT:
    dict(
        arch='demo',
        img_size=64,
        with_vis_mask_token=True,
        mask_mode='mask_token',
        out_type='avg_featmap'),
    UMSwinTransformer:
    dict(
        arch='demo',
        window_size=4,
        with_vis_mask_token=True,
        mask_mode='mask_token',
        out_type='avg_featmap'),
    UMViT:
    dict(arch=_VIT, img_size=32, with_vis_mask_token=True),
    WindowedViT:
    dict(arch=_VIT, img_size=32, layer_scale_init_value=0.1),
    MAEPyramidDecoder:
    dict(in_channels=32, img_size=64, embed_dims=16, depth=1, num_heads=2),
}


def test_every_registered_module_with_the_order_is_tested():
    ours = {
        cls
        for cls in MODELS.module_dict.values()
        if isinstance(cls, type) and issubclass(cls, RandomThenCheckpointInit)
        and cls.__module__.startswith('um_mae.')
    }
    assert ours == set(CASES)


def _init(cls, construction_seed, init_cfg=None):
    """Build with one seed, initialise with another (fixed) one."""
    torch.manual_seed(construction_seed)
    model = cls(init_cfg=init_cfg, **CASES[cls])
    torch.manual_seed(1234)
    model.init_weights()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _constructed(cls, seed):
    torch.manual_seed(seed)
    return cls(**CASES[cls]).state_dict()


@pytest.mark.parametrize('cls', list(CASES), ids=lambda c: c.__name__)
def test_random_init_then_partial_checkpoint(cls, tmp_path):
    kept = [re.compile(p) for p in cls.construction_init_keys]

    def documented_default(key):
        return any(p.match(key) for p in kept)

    # no checkpoint: the documented init does not depend on construction
    first, second = _init(cls, 1), _init(cls, 2)
    built = _constructed(cls, 1)
    assert set(first) == set(built)
    for key in first:
        if documented_default(key):
            assert torch.equal(first[key], built[key]), key
        else:
            assert torch.equal(first[key], second[key]), \
                f'{key} keeps a construction value of PyTorch'

    # a partial checkpoint (every other tensor) from another model
    torch.manual_seed(99)
    source = cls(**CASES[cls])
    source.init_weights()
    loaded = sorted(source.state_dict())[::2]
    path = str(tmp_path / f'{uuid.uuid4().hex}.pth')
    torch.save(
        {
            'state_dict': {
                f'part.{k}': source.state_dict()[k]
                for k in loaded
            }
        }, path)
    init_cfg = dict(
        type='CheckedPretrained',
        checkpoint=path,
        prefix='part.',
        allow_partial=True)
    partial = _init(cls, 1, init_cfg)
    other_seed = _init(cls, 2, init_cfg)
    for key in first:
        if key in loaded:
            assert torch.equal(partial[key], source.state_dict()[key]), key
        else:  # the documented init, as without a checkpoint
            assert torch.equal(partial[key], first[key]), key
            if not documented_default(key):
                assert torch.equal(partial[key], other_seed[key]), key


def test_checked_pretrained_needs_the_order(tmp_path):
    """A module that does not initialise first could re-draw the loaded
    weights after loading (mmengine runs the initializer before the
    children's init_weights): refused, naming the fix."""
    from mmengine.model import BaseModule
    path = str(tmp_path / 'x.pth')
    torch.save({'fc.weight': torch.zeros(2, 2)}, path)

    class Plain(BaseModule):

        def __init__(self):
            super().__init__(
                init_cfg=dict(type='CheckedPretrained', checkpoint=path))
            self.fc = torch.nn.Linear(2, 2, bias=False)

    with pytest.raises(TypeError, match=r"Plain is not one: use mmengine's"):
        Plain().init_weights()
