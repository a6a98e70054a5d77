# Copyright (c) um-mae contributors. All rights reserved.
"""WindowedViT: plain ViT with windowed / global attention, stride 16."""
import logging
import re

import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.backbones.windowed_vit import (WindowedViT,
                                                  relative_position_bias)

DEMO = dict(embed_dims=32, num_layers=8, num_heads=2, feedforward_channels=128)


def _backbone(**kwargs):
    torch.manual_seed(0)
    cfg = dict(arch='demo', img_size=64)
    cfg.update(kwargs)
    model = WindowedViT(**cfg)
    model.init_weights()
    return model.eval()


def _randomise_bias_tables(model):
    for layer in model.layers:
        torch.nn.init.normal_(layer.attn.relative_position_bias_table)


@pytest.mark.parametrize('size,grid', [((64, 96), (4, 6)), ((80, 48), (5, 3))])
def test_stride_16_maps_of_the_requested_blocks(size, grid):
    model = _backbone()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        outs = model(x)
    # default: the outputs of blocks d/4, 2d/4, 3d/4 and d (Li et al.)
    assert model.out_indices == (1, 3, 5, 7)
    assert [tuple(o.shape) for o in outs] == [(2, 32, *grid)] * 4
    # any blocks, in the order given; negative indices count from the end
    last = _backbone(out_indices=(-1, ))
    picked = _backbone(out_indices=(5, 1))
    with torch.no_grad():
        torch.testing.assert_close(last(x)[0], outs[3])
        torch.testing.assert_close(picked(x), (outs[2], outs[0]))


def test_out_indices_are_checked():
    # one index as an int, as in the other backbones
    assert _backbone(out_indices=-1).out_indices == (7, )
    with pytest.raises(
            ValueError,
            match=r'out_indices=\(8,\) must pick '
            r'distinct blocks from 0\.\.7'):
        _backbone(out_indices=(8, ))
    with pytest.raises(ValueError, match=r'global_indices=\(-9,\)'):
        _backbone(global_indices=(-9, ))


def test_frozen_backbone_has_no_gradient_and_stays_in_eval_mode():
    model = _backbone(frozen=True, drop_path_rate=0.5, drop_rate=0.5)
    assert not any(p.requires_grad for p in model.parameters())
    assert model.train() is model and not model.training
    assert not any(m.training for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    first, second = model(x), model(x)  # no dropout / drop path
    torch.testing.assert_close(first, second)
    assert not first[0].requires_grad
    trainable = _backbone(drop_path_rate=0.5).train()
    assert trainable.training and all(p.requires_grad
                                      for p in trainable.parameters())


def test_global_block_schedule():
    model = _backbone()
    assert model.global_indices == (1, 3, 5, 7)
    assert [layer.attn.window_size
            for layer in model.layers] == [4, None, 4, None, 4, None, 4, None]
    # the large ViT schedule, on a narrow model: blocks 6, 12, 18, 24
    deep = WindowedViT(
        arch=dict(
            embed_dims=8, num_layers=24, num_heads=2, feedforward_channels=8),
        img_size=224)
    assert deep.global_indices == (5, 11, 17, 23)
    assert deep.out_indices == (5, 11, 17, 23)
    assert deep.window_size == 14
    assert WindowedViT.arch_zoo['base']['num_layers'] == 12
    assert WindowedViT.arch_zoo['large']['embed_dims'] == 1024


def test_window_blocks_are_local():
    model = _backbone()
    hw = (4, 8)  # two 4x4 windows side by side
    x = torch.randn(1, 32, 32)
    y = x.clone()
    y[0, 7] += 10. * torch.randn(32)  # token (0, 7), right-hand window
    left = torch.arange(32).view(4, 8)[:, :4].flatten()
    with torch.no_grad():
        window = model.layers[0]
        glob = model.layers[1]
        torch.testing.assert_close(
            window(x, hw)[0, left],
            window(y, hw)[0, left])
        assert (glob(x, hw)[0, left] - glob(y, hw)[0, left]).abs().max() \
            > 1e-3


def test_window_attention_equals_global_when_window_covers_grid():
    windowed = _backbone()
    _randomise_bias_tables(windowed)
    glob = _backbone(global_indices=range(8))
    glob.load_state_dict(windowed.state_dict())
    x = torch.randn(2, 3, 64, 64)  # 4x4 grid = one 4x4 window
    with torch.no_grad():
        for a, b in zip(windowed(x), glob(x)):
            torch.testing.assert_close(a, b)


def test_padded_window_masks_the_padding():
    # window 8 on a 4x6 grid: one padded window holding every token; with
    # zero biases it must equal global attention over the real tokens
    windowed = _backbone(window_size=8)
    glob = _backbone(global_indices=range(8))
    state = {
        k: v
        for k, v in windowed.state_dict().items()
        if 'relative_position_bias_table' not in k  # all zero, other shape
    }
    glob.load_state_dict(state, strict=False)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(windowed(x), glob(x)):
            torch.testing.assert_close(a, b)


def test_relative_position_bias_indexing():
    table = torch.arange(9 * 2, dtype=torch.float).view(9, 2)  # 2x2 grid
    bias = relative_position_bias(table, (2, 2), (2, 2))
    # query (0, 0) -> key (1, 1): offset (-1, -1) -> table row 0
    assert bias[:, 0, 3].tolist() == table[0].tolist()
    # any token to itself: offset (0, 0) -> centre row 4
    assert torch.equal(bias[:, 2, 2], table[4])
    # a zero table stays zero when resized to a larger global grid
    zeros = relative_position_bias(torch.zeros(9, 2), (2, 2), (3, 5))
    assert zeros.shape == (2, 15, 15) and not zeros.any()


def test_pos_embed_interpolation():
    model = _backbone()
    base = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        model.pos_embed.zero_()
        ref = model(base)
        # a constant table stays constant on any grid: the same as a bias
        # on the patch projection
        shift = torch.randn(32)
        model.pos_embed.copy_(shift.expand_as(model.pos_embed))
        out = model(base)
        model.pos_embed.zero_()
        model.patch_embed.projection.bias.add_(shift)
        torch.testing.assert_close(out, model(base))
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(ref, out))

    # a checkpoint table of a 2x2 grid, with or without the class slot
    table = torch.randn(1, 1 + 4, 32)
    ckpt = {k: v for k, v in model.state_dict().items() if k != 'pos_embed'}
    model.load_state_dict(dict(ckpt, pos_embed=table))
    assert model.pos_embed.shape == (1, 17, 32)
    torch.testing.assert_close(model.pos_embed[:, 0], table[:, 0])
    const = torch.full((1, 4, 32), 0.5)
    model.load_state_dict(dict(ckpt, pos_embed=const))
    assert not model.pos_embed[:, 0].any()
    torch.testing.assert_close(model.pos_embed[:, 1:],
                               torch.full((1, 16, 32), 0.5))
    with pytest.raises(ValueError, match='cannot resize checkpoint pos_embed'):
        model.load_state_dict(dict(ckpt, pos_embed=torch.zeros(1, 7, 32)))


def test_load_mae_style_checkpoint(tmp_path):
    # a tiny UM-MAE ViT pre-training state dict, as mmpretrain saves it
    torch.manual_seed(1)
    pretrain = MODELS.build(
        dict(type='UMViT', arch=DEMO, img_size=64, with_vis_mask_token=True))
    pretrain.init_weights()
    state = {'backbone.' + k: v for k, v in pretrain.state_dict().items()}
    state['neck.decoder_embed.weight'] = torch.zeros(8, 32)
    path = tmp_path / 'ummae_vit_tiny.pth'
    torch.save(dict(state_dict=state, meta=dict()), path)

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model = WindowedViT(
            arch='demo',
            img_size=64,
            init_cfg=dict(
                type='Pretrained', checkpoint=str(path), prefix='backbone.'))
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    src = pretrain.state_dict()
    for key in ('pos_embed', 'patch_embed.projection.weight',
                'layers.7.attn.qkv.weight', 'layers.3.ffn.layers.1.bias'):
        assert torch.equal(model.state_dict()[key], src[key]), key
    assert not any(layer.attn.relative_position_bias_table.any()
                   for layer in model.layers)
    report = '\n'.join(messages)
    assert 'unexpected key' in report and 'vis_mask_token' in report
    assert 'missing keys' in report and 'relative_position_bias_table' in \
        report

    missing, unexpected = WindowedViT(
        arch='demo', img_size=64).load_state_dict(
            src, strict=False)
    assert sorted(unexpected) == [
        'cls_token', 'ln1.bias', 'ln1.weight', 'vis_mask_token'
    ]
    assert missing and all(
        re.fullmatch(r'layers\.\d\.attn\.relative_position_bias_table', k)
        for k in missing)


@pytest.mark.dense
def test_cross_scope_build_with_neck_and_fpn():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmseg.registry import MODELS as MMSEG_MODELS
    cfg = dict(type='mmpretrain.WindowedViT', arch='demo', img_size=64)
    backbone = MMDET_MODELS.build(cfg)
    assert isinstance(backbone, WindowedViT)
    assert isinstance(MMSEG_MODELS.build(cfg), WindowedViT)
    # a neck list is built as nn.Sequential, as mmdet builds model.neck
    neck = MMDET_MODELS.build([
        dict(type='mmpretrain.ViTMultiScaleAdaptor', embed_dim=32),
        dict(
            type='mmdet.FPN', in_channels=[32] * 4, out_channels=16,
            num_outs=5)
    ])
    with torch.no_grad():
        outs = neck(backbone(torch.randn(1, 3, 64, 96)))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6),
                                                   (2, 3), (1, 2)]


def test_checkpointing_and_drop_path():
    plain = _backbone(drop_path_rate=0.1)
    cp = _backbone(drop_path_rate=0.1, with_cp=True)
    cp.load_state_dict(plain.state_dict())
    assert cp.layers[-1].drop_path.drop_prob == pytest.approx(0.1)
    assert cp.layers[0].drop_path.drop_prob == 0.
    x = torch.randn(1, 3, 64, 64)
    grads = []
    for model in (plain, cp):
        model.train()
        torch.manual_seed(3)  # same drop-path draws
        sum(o.square().mean() for o in model(x)).backward()
        grads.append(model.layers[0].attn.qkv.weight.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


def test_layer_depth_and_errors():
    model = _backbone()
    assert model.get_layer_depth('backbone.pos_embed', 'backbone.') == (0, 10)
    assert model.get_layer_depth('backbone.layers.3.ln1.weight',
                                 'backbone.') == (4, 10)
    assert model.get_layer_depth('neck.0.upsample_2x.0.weight',
                                 'backbone.') == (9, 10)
    with pytest.raises(ValueError, match='multiple of the patch size'):
        model(torch.randn(1, 3, 64, 72))
    with pytest.raises(ValueError, match='not a multiple of 4, so '
                       'global_indices cannot default'):
        WindowedViT(arch=dict(DEMO, num_layers=6), img_size=64)
    six = WindowedViT(
        arch=dict(DEMO, num_layers=6),
        img_size=64,
        global_indices=(2, 5),
        out_indices=(-1, ))
    assert len(six(torch.randn(1, 3, 64, 64))) == 1
    with pytest.raises(ValueError, match="arch 'huge' is not one of"):
        WindowedViT(arch='huge')


def test_beit_options():
    """Layer scale on both branches, no absolute position embedding."""
    model = _backbone(layer_scale_init_value=0.1, use_abs_pos_embed=False)
    keys = set(model.state_dict())
    assert 'pos_embed' not in keys
    assert {'layers.0.attn.gamma1.weight', 'layers.0.ffn.gamma2.weight'} <= \
        keys
    assert torch.equal(model.layers[3].attn.gamma1.weight,
                       torch.full((32, ), 0.1))
    x = torch.randn(1, 3, 64, 64)
    assert [o.shape[-1] for o in model(x)] == [4] * 4
    # layer scale multiplies each branch: scaling it by 0 leaves x
    layer = model.layers[0]
    with torch.no_grad():
        layer.attn.gamma1.weight.zero_()
        layer.ffn.gamma2.weight.zero_()
        tokens = torch.randn(1, 16, 32)
        assert torch.equal(layer(tokens, (4, 4)), tokens)


def test_checkpoint_bias_tables_are_resized_or_refused():
    model = _backbone(window_size=2)  # windowed blocks: 3 x 3 offsets
    state = model.state_dict()
    name = 'layers.0.attn.relative_position_bias_table'  # windowed
    table = torch.randn(7 * 7, 2)  # a 4 x 4 grid's offsets
    model.load_state_dict(dict(state, **{name: table}))
    grid = table.t().reshape(2, 7, 7)
    ours = model.layers[0].attn.relative_position_bias_table.t().reshape(
        2, 3, 3)
    torch.testing.assert_close(ours[:, 1, 1], grid[:, 3, 3])  # offset 0
    with pytest.raises(ValueError, match=r'cannot map checkpoint layers\.0'
                       r'\.attn\.relative_position_bias_table \(49, 3\)'):
        model.load_state_dict(dict(state, **{name: torch.randn(49, 3)}))
