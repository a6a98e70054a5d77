# Copyright (c) um-mae contributors. All rights reserved.
"""ViTMultiScaleAdaptor and ViTSimplePyramid; the backbone / neck split.

``tests/data/vit_adaptor_split.pt`` holds the stride 4 / 8 / 16 / 32 maps
that the fused ``ViTDetBackbone`` (``um_mae/models/backbones/
vit_adapter.py`` at commit a12033f, the last one before the split) computed
in float64 for the cases below, with weights filled by :func:`fill` from its
own state-dict keys (stored with the maps) and the input of
:func:`sample_input`. It was written by running this file as a script::

    git show a12033f:um_mae/models/backbones/vit_adapter.py > old.py
    python tests/test_models/test_necks/test_vit_pyramids.py old.py \\
        tests/data/vit_adaptor_split.pt

The old code is not kept: the test loads the same weights, renamed by
``split_fused_vit_adaptor``, into ``WindowedViT`` + ``ViTMultiScaleAdaptor``
and compares the maps. The ``adaptor`` maps are also derived independently,
by Li et al.'s modules written out in plain torch
(:func:`_plain_vit_pyramid`).
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

import um_mae  # noqa: F401
from um_mae.models.backbones import WindowedViT
from um_mae.models.converters import split_fused_vit_adaptor, strip_prefix
from um_mae.models.necks import ViTMultiScaleAdaptor, ViTSimplePyramid

# the necks are mmseg's Feature2Pyramid; the FPN is mmdet's
pytestmark = pytest.mark.dense

FIXTURE = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'data',
    'vit_adaptor_split.pt')
CASES = {
    # Li et al.: windowed blocks (a 5 x 3 grid padded to 4 x 4 windows),
    # global blocks with bias tables resized from the 4 x 4 pre-training
    # grid, an odd grid at stride 32
    'adaptor': dict(),
    # BEiT parameterisation: layer scale, no absolute position embedding
    'adaptor-beit': dict(layer_scale_init_value=0.1, use_abs_pos_embed=False),
}
ARCH = dict(embed_dims=16, num_layers=8, num_heads=2, feedforward_channels=32)
COMMON = dict(arch=ARCH, img_size=32, patch_size=8)
NORM = dict(type='GN', num_groups=4)
INPUT_SHAPE = (1, 3, 40, 24)


def fill(shapes):
    """Deterministic weights for ``(key, shape)`` pairs, in their order."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes:
        value = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        if key.endswith('.weight') and len(shape) == 1:
            value += 1  # norms and layer scale around 1
        state[key] = value
    return state


def sample_input():
    g = torch.Generator().manual_seed(1)
    return torch.randn(INPUT_SHAPE, generator=g, dtype=torch.float64)


def _split_model(case, fixture, out_indices=None, rescales=(4, 2, 1, 0.5)):
    """Backbone + adaptor holding the fixture's weights, renamed."""
    ref = fixture['cases'][case]
    old = fill(zip(ref['keys'], ref['shapes']))
    new = split_fused_vit_adaptor({f'backbone.{k}': v
                                   for k, v in old.items()},
                                  neck='neck.',
                                  fpn=None,
                                  rescales=rescales)
    backbone = WindowedViT(
        **COMMON, out_indices=out_indices, **CASES[case]).double().eval()
    neck = ViTMultiScaleAdaptor(16, rescales, norm_cfg=NORM).double()
    backbone.load_state_dict(strip_prefix(new, 'backbone.'))
    neck.load_state_dict(strip_prefix(new, 'neck.'))
    assert set(new) == {f'backbone.{k}' for k in backbone.state_dict()} | {
        f'neck.{k}'
        for k in neck.state_dict()
    }
    return backbone, neck


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, weights_only=True)


@pytest.mark.parametrize('case', list(CASES))
def test_split_gives_the_maps_of_the_fused_backbone(case, fixture):
    backbone, neck = _split_model(case, fixture)
    with torch.no_grad():
        outs = neck(backbone(sample_input()))
    expected = fixture['cases'][case]['outputs']
    assert [o.shape[-2:] for o in outs] == [(20, 12), (10, 6), (5, 3), (3, 2)]
    for got, want in zip(outs, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_split_gives_the_stride_8_to_32_maps_of_the_gfl_configs(fixture):
    """The GFL configs took the last three scales (out_indices=(1, 2, 3));
    their unused x4 module is dropped from an old checkpoint."""
    backbone, neck = _split_model(
        'adaptor', fixture, out_indices=(-5, -3, -1), rescales=(2, 1, 0.5))
    assert neck.upsample_4x is None
    with torch.no_grad():
        outs = neck(backbone(sample_input()))
    for got, want in zip(outs, fixture['cases']['adaptor']['outputs'][1:],
                         strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_split_renames_detector_keys():
    sd = {
        'backbone.layers.0.attn.qkv.weight': torch.zeros(1),
        'backbone.scale_modules.0.1.weight': torch.zeros(2),
        'backbone.scale_modules.1.bias': torch.zeros(3),
        'neck.lateral_convs.0.conv.weight': torch.zeros(4),
        'rpn_head.rpn_conv.weight': torch.zeros(5),
    }
    new = split_fused_vit_adaptor(sd)
    assert list(new) == [
        'backbone.layers.0.attn.qkv.weight', 'neck.0.upsample_4x.1.weight',
        'neck.0.upsample_2x.0.bias', 'neck.1.lateral_convs.0.conv.weight',
        'rpn_head.rpn_conv.weight'
    ]
    assert all(new[k] is v for k, v in zip(new, sd.values()))


@pytest.mark.parametrize(
    'size,strides',
    [((64, 96), [(16, 24), (8, 12), (4, 6), (2, 3)]),
     ((80, 48), [(20, 12), (10, 6), (5, 3), (3, 2)])])  # odd: ceil pooling
def test_adaptor_levels(size, strides):
    backbone = WindowedViT(arch='demo', img_size=64).eval()
    neck = ViTMultiScaleAdaptor(32)
    with torch.no_grad():
        taps = backbone(torch.randn(2, 3, *size))
        outs = neck(taps)
    assert [tuple(o.shape) for o in outs] == [(2, 32, *s) for s in strides]
    # x1 is the tap itself; x0.5 its 2x2 max (ceil mode keeps an odd edge)
    assert torch.equal(outs[2], taps[2])
    torch.testing.assert_close(
        outs[3], F.max_pool2d(taps[3], 2, 2, ceil_mode=True))
    # any subset of the factors, each input with its own module
    three = ViTMultiScaleAdaptor(32, (2, 1, 0.5))
    three.load_state_dict(neck.state_dict(), strict=False)
    with torch.no_grad():
        for got, want in zip(three(taps[1:]), outs[1:], strict=True):
            torch.testing.assert_close(got, want)


def test_adaptor_is_feature2pyramid_with_ceil_pooling():
    """Same keys and, on even grids, the same maps as mmseg's module."""
    torch.manual_seed(0)
    ours = ViTMultiScaleAdaptor(32).eval()
    from mmseg.models.necks import Feature2Pyramid
    theirs = Feature2Pyramid(32, norm_cfg=dict(type='GN', num_groups=32))
    theirs.load_state_dict(ours.state_dict())  # strict: the same keys
    for grid, equal in (((4, 6), True), ((5, 3), False)):
        maps = [torch.randn(1, 32, *grid) for _ in range(4)]
        with torch.no_grad():
            a, b = ours(maps), theirs(maps)
        for x, y in zip(a[:3], b[:3]):
            torch.testing.assert_close(x, y)
        assert (a[3].shape == b[3].shape) == equal  # floor drops a row


def test_simple_pyramid_builds_every_level_from_the_last_map():
    torch.manual_seed(0)
    backbone = WindowedViT(arch='demo', img_size=64, out_indices=(-1, ))
    simple = ViTSimplePyramid(32)
    # ViTDet's x4 module: LayerNorm over channels between the two convs
    assert type(simple.upsample_4x[1]).__name__ == 'LayerNorm2d'
    assert simple.upsample_4x[1].eps == 1e-6
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        last = backbone(x)
        outs = simple(last)
        adaptor = ViTMultiScaleAdaptor(
            32, norm_cfg=dict(type='mmpretrain.LN2d', eps=1e-6))
        adaptor.load_state_dict(simple.state_dict())
        same = adaptor(last * 4)  # the one map at every level
    assert [tuple(o.shape) for o in outs] == [(1, 32, 16, 24), (1, 32, 8, 12),
                                              (1, 32, 4, 6), (1, 32, 2, 3)]
    for got, want in zip(outs, same):
        torch.testing.assert_close(got, want)

    # then mmdet's FPN: strides 4 - 32 and the pooled stride-64 level
    from mmdet.registry import MODELS as MMDET_MODELS
    fpn = MMDET_MODELS.build(
        dict(
            type='mmdet.FPN', in_channels=[32] * 4, out_channels=8,
            num_outs=5))
    with torch.no_grad():
        levels = fpn(outs)
    assert [o.shape[-2:] for o in levels] == [(16, 24), (8, 12), (4, 6),
                                              (2, 3), (1, 2)]
    torch.testing.assert_close(levels[4], F.max_pool2d(levels[3], 1, 2))


def test_bad_inputs_are_one_line():
    with pytest.raises(ValueError, match=r'from one map but got 4; set the '
                       r'backbone out_indices=\(-1, \)'):
        ViTSimplePyramid(8)([torch.zeros(1, 8, 2, 2)] * 4)
    with pytest.raises(ValueError, match=r'got 1 maps for the 4 rescales '
                       r'\(4, 2, 1, 0.5\); give the backbone 4 out_indices'):
        ViTMultiScaleAdaptor(8, norm_cfg=NORM)([torch.zeros(1, 8, 2, 2)])
    with pytest.raises(ValueError, match=r'rescales \(4, 3\) must take'):
        ViTMultiScaleAdaptor(8, (4, 3))
    with pytest.raises(ValueError, match=r'rescales \(2, 2\) must take'):
        ViTMultiScaleAdaptor(8, (2, 2))
    with pytest.raises(TypeError, match='one factor per input map'):
        ViTMultiScaleAdaptor(8, 4)


def _plain_vit_pyramid(w,
                       x,
                       heads=2,
                       window=4,
                       table=(4, 4),
                       global_blocks=(1, 3, 5, 7)):
    """Li et al.'s ViT pyramid in plain torch, on the fixture's weights.

    Patch embedding (8x8 conv) plus the absolute table (class slot
    dropped, bicubic to the grid in float32); pre-norm blocks (LayerNorm
    eps 1e-6): attention with a relative position bias per block, in ``window``
    windows of the map padded at the bottom / right (padded keys masked)
    or, in ``global_blocks``, over the whole map with the table resized
    bicubic (corners aligned) to the grid; a GELU MLP. The outputs of the
    global blocks, rescaled x4 (transposed conv, GroupNorm(4), GELU,
    transposed conv), x2 (transposed conv), x1, x0.5 (2x2 max pool, ceil).
    """
    B = x.shape[0]
    x = F.conv2d(
        x,
        w['patch_embed.projection.weight'],
        w['patch_embed.projection.bias'],
        stride=8)
    C, H, W = x.shape[1:]
    pos = w['pos_embed'][0, 1:].t().reshape(1, C, *table)
    # bicubic in float32, as mmpretrain's resize_pos_embed (our ViTs use it)
    x = x + F.interpolate(
        pos.float(), (H, W), mode='bicubic', align_corners=False).to(x)
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C)

    def bias(tab, h, wd):  # (heads, h*wd, h*wd)
        tab = tab.t().reshape(1, heads, 2 * table[0] - 1, 2 * table[1] - 1)
        if (h, wd) != table:
            tab = F.interpolate(
                tab, (2 * h - 1, 2 * wd - 1),
                mode='bicubic',
                align_corners=True)
        tab = tab[0]
        out = torch.empty(heads, h * wd, h * wd, dtype=x.dtype)
        for i in range(h * wd):
            for j in range(h * wd):
                dy = i // wd - j // wd + h - 1
                dx = i % wd - j % wd + wd - 1
                out[:, i, j] = tab[:, dy, dx]
        return out

    def attend(t, p, b, valid):  # t: (n, C) tokens of one group
        n = t.shape[0]
        q, k, v = (t @ w[p + 'qkv.weight'].t() + w[p + 'qkv.bias']).reshape(
            n, 3, heads, -1).permute(1, 2, 0, 3)
        logits = q @ k.transpose(-1, -2) / q.shape[-1]**.5 + b
        logits[..., ~valid] = float('-inf')
        out = (logits.softmax(-1) @ v).transpose(0, 1).reshape(n, C)
        return out @ w[p + 'proj.weight'].t() + w[p + 'proj.bias']

    taps = []
    for i in range(8):
        p = f'layers.{i}.'
        y = F.layer_norm(x, (C, ), w[p + 'ln1.weight'], w[p + 'ln1.bias'],
                         1e-6)
        tab = w[p + 'attn.relative_position_bias_table']
        out = torch.zeros_like(y)
        if i in global_blocks:
            b = bias(tab, H, W)
            for n in range(B):
                out[n] = attend(y[n].reshape(H * W, C), p + 'attn.', b,
                                torch.ones(H * W,
                                           dtype=torch.bool)).reshape(H, W, C)
        else:
            b = bias(tab, window, window)
            Hp, Wp = -(-H // window) * window, -(-W // window) * window
            yp = torch.zeros(B, Hp, Wp, C, dtype=x.dtype)
            yp[:, :H, :W] = y
            real = torch.zeros(Hp, Wp, dtype=torch.bool)
            real[:H, :W] = True
            full = torch.zeros_like(yp)
            for n in range(B):
                for r in range(0, Hp, window):
                    for c in range(0, Wp, window):
                        sl = (slice(r, r + window), slice(c, c + window))
                        full[n][sl] = attend(yp[n][sl].reshape(-1,
                                                               C), p + 'attn.',
                                             b, real[sl].reshape(-1)).reshape(
                                                 window, window, C)
            out = full[:, :H, :W]
        x = x + out
        y = F.layer_norm(x, (C, ), w[p + 'ln2.weight'], w[p + 'ln2.bias'],
                         1e-6)
        y = F.gelu(y @ w[p + 'ffn.layers.0.0.weight'].t() +
                   w[p + 'ffn.layers.0.0.bias'])
        x = x + y @ w[p + 'ffn.layers.1.weight'].t() + w[p +
                                                         'ffn.layers.1.bias']
        if i in global_blocks:
            taps.append(x.permute(0, 3, 1, 2))
    s = 'scale_modules.'
    x4 = F.conv_transpose2d(
        taps[0], w[s + '0.0.weight'], w[s + '0.0.bias'], stride=2)
    x4 = F.gelu(F.group_norm(x4, 4, w[s + '0.1.weight'], w[s + '0.1.bias']))
    x4 = F.conv_transpose2d(
        x4, w[s + '0.3.weight'], w[s + '0.3.bias'], stride=2)
    x2 = F.conv_transpose2d(
        taps[1], w[s + '1.weight'], w[s + '1.bias'], stride=2)
    return [x4, x2, taps[2], F.max_pool2d(taps[3], 2, 2, ceil_mode=True)]


def test_fixture_maps_equal_a_plain_torch_vit_pyramid(fixture):
    """The golden maps (written by our old fused code) against Li et al.'s
    modules written out in plain torch (:func:`_plain_vit_pyramid`) on a
    5 x 3 grid that needs window padding; the split model equals the
    golden maps in the tests above. The plain forward disagrees with the
    golden maps when a rule is broken in it (planted: padded keys not
    masked; global tables resized without aligned corners)."""
    ref = fixture['cases']['adaptor']
    weights = fill(zip(ref['keys'], ref['shapes']))
    with torch.no_grad():
        outs = _plain_vit_pyramid(weights, sample_input())
    for got, want in zip(outs, ref['outputs'], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def _write_fixture(old_source: str, out: str) -> None:
    """Run the fused ViTDetBackbone of ``old_source`` on the cases."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('old_vit_adapter',
                                                  old_source)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    cases = {}
    for name, kwargs in CASES.items():
        model = old.ViTDetBackbone(
            **copy.deepcopy(COMMON), scale_norm_cfg=NORM,
            **kwargs).double().eval()
        shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
        model.load_state_dict(fill(shapes))
        with torch.no_grad():
            outs = model(sample_input())
        cases[name] = dict(
            keys=[k for k, _ in shapes],
            shapes=[list(s) for _, s in shapes],
            outputs=[o.clone() for o in outs])
    torch.save(
        dict(
            source='a12033f:um_mae/models/backbones/vit_adapter.py',
            cases=cases), out)


if __name__ == '__main__':
    import sys
    _write_fixture(*sys.argv[1:3])
