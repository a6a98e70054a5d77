# Copyright (c) um-mae contributors. All rights reserved.
"""StageNormProjection: per-map LayerNorm + Linear before an FPN."""
import pytest
import torch
from mmengine.registry import DefaultScope

from um_mae.models.necks import StageNormProjection


def _maps():
    torch.manual_seed(0)
    return [torch.randn(2, 8, 8, 6), torch.randn(2, 16, 4, 3)]


def test_shapes_and_per_location_normalisation():
    neck = StageNormProjection(in_channels=[8, 16], out_channels=12)
    neck.init_weights()
    maps = _maps()
    outs = neck(maps)
    assert [o.shape for o in outs] == [(2, 12, 8, 6), (2, 12, 4, 3)]
    # the norm runs over the channels of each location: a per-location
    # shift and scale of the input does not change the output
    shifted = [
        x * (1 + torch.rand(2, 1, *x.shape[2:])) +
        torch.randn(2, 1, *x.shape[2:]) for x in maps
    ]
    for a, b in zip(outs, neck(shifted)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # and each output is that linear map of the normalised input
    x = maps[1].permute(0, 2, 3, 1)
    x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(
        x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    expected = x @ neck.projs[1].weight.T + neck.projs[1].bias
    torch.testing.assert_close(outs[1], expected.permute(0, 3, 1, 2))


def test_init_draws_linear_weights_and_zero_bias():
    neck = StageNormProjection(in_channels=[64, 128], out_channels=256)
    neck.init_weights()
    for proj in neck.projs:
        assert 0.015 < proj.weight.std().item() < 0.025
        assert proj.bias.abs().max().item() == 0


def test_wrong_channels_are_named():
    neck = StageNormProjection(in_channels=[8, 32])
    with pytest.raises(ValueError, match=r'got maps with \[8, 16\] channels'
                       r' but in_channels=\[8, 32\]'):
        neck(_maps())
    with pytest.raises(ValueError, match='must list the channels'):
        StageNormProjection(in_channels=64)


@pytest.mark.dense
def test_neck_list_in_a_detector_runs_before_the_fpn():
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = MODELS.build([
            dict(
                type='mmpretrain.StageNormProjection',
                in_channels=[8, 16],
                out_channels=24),
            dict(type='FPN', in_channels=[24, 24], out_channels=10,
                 num_outs=3)
        ])
    outs = neck(_maps())
    assert isinstance(neck[0], StageNormProjection)
    assert [o.shape for o in outs] == [(2, 10, 8, 6), (2, 10, 4, 3),
                                       (2, 10, 2, 2)]
