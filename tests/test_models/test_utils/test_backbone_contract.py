# Copyright (c) um-mae contributors. All rights reserved.
"""The rules every backbone shares: arch, indices, position tables, layer
depth, ``train()`` returning ``self`` and the mask arguments."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.utils import (layer_depth, parse_arch, parse_indices,
                                 resize_checkpoint_pos_embed)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

#: every registered backbone, tiny, with the input it takes
BACKBONES = {
    'UMPVT': (dict(type='UMPVT', arch='demo', img_size=64), 64),
    'UMSwinTransformer': (dict(type='UMSwinTransformer', arch='demo'), 64),
    'UMViT': (dict(type='UMViT', arch='deit-tiny', img_size=32), 32),
    'WindowedViT': (dict(type='WindowedViT', arch='demo', img_size=64), 64),
}
#: every algorithm, by its demo config
ALGORITHMS = [
    'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py',
    'configs/pretrain/ummae/ummae_vit-tiny-p16_1xb8-10e_demo-128px.py',
    'configs/pretrain/simmim/simmim_pvt-demo_1xb8-10e_demo-128px.py',
    'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py',
]
ZOO = {'demo': {'embed_dims': 4, 'depths': [1, 2], 'num_heads': 1}}
KEYS = ('embed_dims', 'depths', 'num_heads')


def test_parse_arch():
    arch = parse_arch('DEMO', ZOO, KEYS)
    assert arch == ZOO['demo']
    arch['depths'].append(3)  # a copy
    assert ZOO['demo']['depths'] == [1, 2]
    assert parse_arch(dict(ZOO['demo'], depths=(1, 1)), ZOO,
                      KEYS)['depths'] == [1, 1]
    with pytest.raises(
            ValueError,
            match=r"arch 'huge' is not one of "
            r"\['demo'\]; pass one of them or a dict"):
        parse_arch('huge', ZOO, KEYS)
    with pytest.raises(TypeError, match='arch must be a str or dict'):
        parse_arch(3, ZOO, KEYS)
    with pytest.raises(
            ValueError,
            match=r"exactly the keys \['depths', "
            r"'embed_dims', 'num_heads'\], got \['depths'\]"):
        parse_arch(dict(depths=[1]), ZOO, KEYS)
    with pytest.raises(ValueError, match='one entry per stage'):
        parse_arch(dict(embed_dims=[4], depths=[1, 1], num_heads=1), ZOO, KEYS)


def test_parse_indices():
    assert parse_indices(-1, 4) == (3, )
    assert parse_indices([3, -4], 4) == (3, 0)  # the order given
    for bad in ([], [4], [-5], [1, -3]):
        with pytest.raises(
                ValueError,
                match='must pick distinct stages '
                r'from 0\.\.3 \(or -4\.\.-1\)'):
            parse_indices(bad, 4)


def _bicubic(table, side, dst):
    """Direct ``F.interpolate`` of a square ``(1, side*side, C)`` table."""
    grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=dst, mode='bicubic', align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(1, dst[0] * dst[1], -1)


def test_resize_checkpoint_pos_embed(mm_log):
    """Values: the direct bicubic ``F.interpolate`` of the grid part, onto
    a non-square grid, the class-token slot kept as it is (or an unused
    zero slot added). Planted bugs caught: bilinear; the class slot
    interpolated with the grid; the target grid transposed."""
    own = torch.zeros(1, 1 + 15, 8)  # class slot + 3x5
    ckpt = torch.randn(1, 1 + 4, 8)  # class slot + 2x2
    state = dict(pos_embed=ckpt)
    resize_checkpoint_pos_embed(state, 'pos_embed', own, (3, 5), 1, 'bicubic')
    assert 'from a 2x2 grid to (3, 5)' in mm_log()
    torch.testing.assert_close(
        state['pos_embed'],
        torch.cat([ckpt[:, :1], _bicubic(ckpt[:, 1:], 2, (3, 5))], 1))
    no_slot = dict(pos_embed=ckpt[:, 1:])  # 2x2, no class slot
    resize_checkpoint_pos_embed(no_slot, 'pos_embed', own, (3, 5), 1,
                                'bicubic')
    torch.testing.assert_close(
        no_slot['pos_embed'],
        torch.cat([torch.zeros(1, 1, 8),
                   _bicubic(ckpt[:, 1:], 2, (3, 5))], 1))
    own = torch.zeros(1, 1 + 16, 8)  # class slot + 4x4
    same = dict(pos_embed=own.clone())
    resize_checkpoint_pos_embed(same, 'pos_embed', own, (4, 4), 1, 'bicubic')
    assert same['pos_embed'] is not None and torch.equal(
        same['pos_embed'], own)
    for bad in (torch.zeros(1, 7, 8), torch.zeros(1, 4, 6)):
        with pytest.raises(ValueError, match=r'expected \(1, 1 \+ s\*s, 8\)'):
            resize_checkpoint_pos_embed(
                dict(pos_embed=bad), 'pos_embed', own, (4, 4), 1, 'bicubic')
    # a table without class slot takes none
    with pytest.raises(ValueError, match=r'expected \(1, s\*s, 8\)'):
        resize_checkpoint_pos_embed(
            dict(pos_embed=torch.zeros(1, 5, 8)), 'pos_embed', own[:, 1:],
            (4, 4), 0, 'bicubic')


def test_layer_depth_of_both_layouts():
    depths = [1, 2, 1]  # 4 blocks, 6 depths
    assert layer_depth('b.patch_embed.projection.weight', 'b.',
                       depths) == (0, 6)
    assert layer_depth('b.vis_mask_token', 'b.', depths) == (0, 6)
    assert layer_depth('b.stages.1.downsample.projection.weight', 'b.',
                       depths) == (2, 6)
    assert layer_depth('b.stages.1.blocks.1.norm1.weight', 'b.',
                       depths) == (3, 6)
    assert layer_depth('b.stages.2.blocks.0.ffn.layers.1.bias', 'b.',
                       depths) == (4, 6)
    assert layer_depth('b.layers.3.ln1.weight', 'b.', [4]) == (4, 6)
    assert layer_depth('b.fc_norm.weight', 'b.', depths) == (5, 6)
    assert layer_depth('head.fc.weight', 'b.', depths) == (5, 6)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_train_returns_self(name):
    cfg, size = BACKBONES[name]
    model = MODELS.build(cfg)
    assert model.train() is model and model.training
    assert model.eval() is model and not model.training
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        outs = model.double().eval()(x)
    assert all(o.dtype == torch.float64 for o in outs)


@pytest.mark.parametrize('path', ALGORITHMS)
def test_algorithm_train_returns_self(path):
    model = MODELS.build(Config.fromfile(osp.join(REPO, path)).model)
    assert model.train() is model and model.backbone.training
    with torch.no_grad():
        feats = model.double().eval()(
            torch.randn(1, 3, 64, 64, dtype=torch.float64), mode='tensor')
    assert not model.backbone.training
    assert all(f.dtype == torch.float64 for f in feats)


@pytest.mark.parametrize('name', ['UMPVT', 'UMSwinTransformer', 'UMViT'])
def test_secondary_mask_rules_are_shared(name):
    """One error text per mask rule, whatever the backbone."""
    cfg, size = BACKBONES[name]
    x = torch.randn(1, 3, size, size)
    h = size // 16
    mask = torch.ones(1, h, h, dtype=torch.bool)
    mask[:, ::2, ::2] = False  # uniform
    model = MODELS.build(cfg)
    with pytest.raises(
            ValueError,
            match='secondary_mask was given without '
            'mask; pass the primary mask as well'):
        model(x, None, mask)
    with pytest.raises(
            ValueError,
            match='secondary_mask given but the '
            'backbone has no vis_mask_token; build it with '
            'with_vis_mask_token=True'):
        model(x, mask, mask)
    if name != 'UMViT':  # SimMIM mode: no use for a secondary mask
        simmim = MODELS.build(dict(cfg, mask_mode='mask_token'))
        with pytest.raises(
                ValueError,
                match=r'only used by the compact '
                r"\(UM-MAE\) encoder, not mask_mode='mask_token'"):
            simmim(x, mask, mask)
    with_token = MODELS.build(dict(cfg, with_vis_mask_token=True))
    with pytest.raises(
            ValueError, match='secondary_mask must be a superset '
            'of mask'):
        with_token(x, mask, torch.zeros_like(mask))
