# Copyright (c) um-mae contributors. All rights reserved.
"""UMPVT against the official UM-MAE PVT fixtures, plus its invariants."""
import pytest
import torch
import torch.nn.functional as F
from conftest import PVT_FIXTURE_ARCH
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.backbones import UMPVT
from um_mae.models.converters import convert_official_pvt


def _close(ours, ref):
    # float32-stored fixture keys: see shared/reference/README.md
    torch.testing.assert_close(
        ours, ref.double(), rtol=1e-6, atol=1e-6, check_dtype=False)


def _official(ref, **kwargs):
    model = UMPVT(arch=PVT_FIXTURE_ARCH, out_indices=(0, 1, 2, 3), **kwargs)
    model.load_state_dict(
        convert_official_pvt(ref['state_dict']), strict=False)
    model.double()
    model.eval()
    return model


def test_finetune_stage_feats_match_fixture(reference):
    ref = reference('ft_pvt.pt')
    model = _official(ref, learnable_pos_embed=True)
    with torch.no_grad():
        outs = model(ref['img'].double())
    assert len(outs) == 4
    for out, expected in zip(outs, ref['stage_feats']):
        _close(out, expected)


def test_classifier_logits_match_fixture(reference):
    ref = reference('ft_pvt.pt')
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='UMPVT',
                arch=PVT_FIXTURE_ARCH,
                out_type='avg_featmap',
                learnable_pos_embed=True),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    sd = {
        'backbone.' + k: v
        for k, v in convert_official_pvt(ref['state_dict']).items()
    }
    sd['head.fc.weight'] = ref['state_dict']['head.weight']
    sd['head.fc.bias'] = ref['state_dict']['head.bias']
    model.load_state_dict(sd, strict=True)
    model.double()
    model.eval()
    with torch.no_grad():
        logits = model(ref['img'].double(), mode='tensor')
    torch.testing.assert_close(logits, ref['logits'], rtol=0, atol=1e-10)


def test_compact_encoder_matches_fixture(reference):
    ref = reference('mae_pvt.pt')
    model = _official(ref, with_vis_mask_token=True)
    captured = {}
    model.stages[0].blocks[0].register_forward_pre_hook(
        lambda m, args: captured.update(x=args[0]))
    mask = ref['mask'].reshape(2, 16, 16)
    secondary = ref['secondary_mask'].reshape(2, 16, 16)
    with torch.no_grad():
        outs = model(ref['img'].double(), mask, secondary)
    enc_input = captured['x'].transpose(1, 2).reshape(2, 16, 32, 32)
    _close(enc_input, ref['enc_input'])
    for out, expected in zip(outs, ref['enc_stage_feats']):
        _close(out, expected)


def _demo(**kwargs):
    torch.manual_seed(0)
    model = UMPVT(arch='demo', img_size=128, **kwargs)
    model.init_weights()
    model.eval()
    return model


def _uniform_mask(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    slot = torch.randint(4, (n, h // 2, w // 2), generator=g)
    mask = torch.ones(n, h // 2, w // 2, 4, dtype=torch.bool)
    mask.scatter_(-1, slot.unsqueeze(-1), False)
    return mask.reshape(n, h // 2, w // 2, 2, 2).permute(0, 1, 3, 2,
                                                         4).reshape(n, h, w)


@pytest.mark.parametrize('size', [(64, 96), (128, 128)])
def test_dense_strides_for_any_multiple_of_32(size):
    model = _demo(out_indices=(0, 1, 2, 3))
    outs = model(torch.randn(1, 3, *size))
    for out, stride, dims in zip(outs, (4, 8, 16, 32), [16, 32, 64, 128]):
        assert out.shape == (1, dims, size[0] // stride, size[1] // stride)


def bicubic_table(table, src, dst):
    """A ``(1, h*w, C)`` table on grid ``src`` resized to ``dst`` by a
    direct ``F.interpolate`` (bicubic, ``align_corners=False``: the
    official ``interpolate_pos_embed``)."""
    grid = table.reshape(1, *src, table.shape[-1]).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=dst, mode='bicubic', align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(1, dst[0] * dst[1], -1)


def test_learnable_pos_embed_is_resized_for_other_inputs():
    """On a non-square input the learnable 32x32 table is used bicubic-
    resized to 16x24: the output equals a twin built for that input whose
    table is the direct ``F.interpolate`` of it. Planted bugs caught:
    bilinear resizing; height and width swapped."""
    model = _demo(learnable_pos_embed=True)
    assert model.pos_embed.requires_grad
    with torch.no_grad():
        model.pos_embed.add_(0.5 * torch.randn_like(model.pos_embed))
    twin = UMPVT(
        arch='demo', img_size=(64, 96), learnable_pos_embed=True).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        twin.pos_embed.copy_(
            bicubic_table(model.pos_embed, (32, 32), (16, 24)))
    x = torch.randn(1, 3, 64, 96)
    out = model(x)[0]
    with torch.no_grad():
        torch.testing.assert_close(out, twin(x)[0])
    out.sum().backward()
    assert model.pos_embed.grad.abs().sum() > 0
    # a frozen sin-cos table is rebuilt (exact) instead
    assert not _demo().pos_embed.requires_grad


def test_checkpoint_pos_embed_is_resized_on_load():
    """A checkpoint's 32x32 table loads into a 256x128-px model as its
    direct bicubic ``F.interpolate`` to 64x32 (planted: bilinear)."""
    src = _demo(learnable_pos_embed=True)
    with torch.no_grad():
        src.pos_embed.add_(0.5 * torch.randn_like(src.pos_embed))
    dst = UMPVT(arch='demo', img_size=(256, 128), learnable_pos_embed=True)
    dst.load_state_dict(src.state_dict())
    assert dst.pos_embed.shape == (1, 64 * 32, 16)
    torch.testing.assert_close(
        dst.pos_embed.data,
        bicubic_table(src.pos_embed.data, (32, 32), (64, 32)))


def test_compact_mode_ignores_dropped_and_secondary_pixels():
    model = _demo(with_vis_mask_token=True, out_indices=(0, 1, 2, 3))
    mask = _uniform_mask(2, 8, 8)
    secondary = mask.clone()
    secondary[:, 0, :] = True  # a few kept tokens become vis_mask_token
    assert (secondary & ~mask).any()
    img = torch.randn(2, 3, 128, 128)
    hidden = secondary.repeat_interleave(16, 1).repeat_interleave(16, 2)
    noisy = torch.where(hidden[:, None], torch.randn_like(img), img)
    with torch.no_grad():
        outs = model(img, mask, secondary)
        outs_noisy = model(noisy, mask, secondary)
        outs_plain = model(img, mask)
    # compact maps: half the side of the dense ones (strides 8..64)
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]
    for a, b in zip(outs, outs_noisy):
        torch.testing.assert_close(a, b)
    # the secondary mask does change the encoding
    assert not torch.allclose(outs[-1], outs_plain[-1])


def test_compact_mode_halves_spatial_reduction():
    model = _demo()
    seen = []
    # the norm of the reduced keys/values sees (N, keys, C)
    model.stages[0].blocks[0].attn.norm.register_forward_hook(
        lambda m, i, o: seen.append(o.shape[1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 128))
        model(torch.randn(1, 3, 128, 128), _uniform_mask(1, 8, 8))
    # sr 8 on 32x32 and sr 4 on the 16x16 compact map: same 4x4 key grid
    assert seen == [16, 16]


def test_mask_token_mode_replaces_masked_tokens():
    model = _demo(mask_mode='mask_token')
    assert model.mask_token is not None
    mask = torch.rand(2, 8, 8) < 0.75
    img = torch.randn(2, 3, 128, 128)
    hidden = mask.repeat_interleave(16, 1).repeat_interleave(16, 2)
    noisy = torch.where(hidden[:, None], torch.randn_like(img), img)
    with torch.no_grad():
        out = model(img, mask)[0]
        out_noisy = model(noisy, mask)[0]
    assert out.shape == (2, 128, 4, 4)  # full-size map, any mask pattern
    torch.testing.assert_close(out, out_noisy)


@pytest.mark.parametrize('rate', [0., 0.3])
def test_drop_path_is_active_in_training_only(rate):
    """Two training passes on one input differ with a drop-path rate (and
    only then); evaluation passes are identical and, at rate 0, equal the
    training passes. Catches a rate that does not reach the blocks
    (planted: ``DropPath`` built with ``drop_prob=0``)."""
    torch.manual_seed(0)
    model = UMPVT(arch='demo', img_size=64, drop_path_rate=rate)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        train = [model.train()(x)[-1] for _ in range(2)]
        evals = [model.eval()(x)[-1] for _ in range(2)]
    assert train[0].shape == (2, 128, 2, 2)
    assert torch.equal(evals[0], evals[1])
    assert torch.equal(train[0], train[1]) == (rate == 0)
    if rate == 0:
        assert torch.equal(train[0], evals[0])


@pytest.mark.dense
def test_builds_from_mmdet_and_mmseg_scopes():
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    for registry in (DET_MODELS, SEG_MODELS):
        model = registry.build(
            dict(type='mmpretrain.UMPVT', arch='demo', out_indices=(0, 1)))
        assert isinstance(model, UMPVT)


@pytest.mark.parametrize('kwargs, call, match', [
    ({}, lambda m: m(torch.randn(1, 3, 100, 128)),
     'input size 100x128 is not divisible by 32.*128x128'),
    ({}, lambda m: m(torch.randn(1, 3, 64, 64),
                     torch.zeros(1, 4, 4).bool()), 'not a uniform mask'),
    ({}, lambda m: m(
        torch.randn(1, 3, 64, 64), _uniform_mask(1, 4, 4),
        torch.ones(1, 4, 4).bool()), 'with_vis_mask_token=True'),
    (dict(with_vis_mask_token=True), lambda m: m(
        torch.randn(1, 3, 64, 64), _uniform_mask(1, 4, 4),
        torch.zeros(1, 4, 4).bool()), 'contain every token of mask'),
])
def test_forward_errors(kwargs, call, match):
    model = UMPVT(arch='demo', **kwargs)
    with pytest.raises(ValueError, match=match):
        call(model)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(arch='huge'),
         r"arch 'huge' is not one of \['demo', 's', 'small'\]"),
        (dict(arch=dict(embed_dims=[8])),
         'custom arch needs exactly the keys'),
        # a key PVT does not read is an error, not ignored
        (dict(arch=dict(UMPVT.arch_zoo['demo'], window_size=7)),
         r"got \['depths', 'embed_dims', 'mlp_ratios', 'num_heads', "
         r"'sr_ratios', 'window_size'\]"),
        (dict(arch=dict(UMPVT.arch_zoo['demo'], depths=[1, 1])),
         'one entry per stage'),
        (dict(out_indices=(1, 1)), 'must pick distinct stages from 0..3'),
        (dict(out_type='avg_featmap',
              out_indices=(0, 3)), 'use out_indices=-1'),
        (dict(out_type='cls_token'), "use 'featmap' or 'avg_featmap'"),
        (dict(mask_mode='random'), "use 'compact'"),
    ])
def test_constructor_errors(kwargs, match):
    kwargs.setdefault('arch', 'demo')
    with pytest.raises(ValueError, match=match):
        UMPVT(**kwargs)


def test_small_arch_is_pvt_s():
    model = UMPVT(arch='small', out_indices=(0, 1, 2, 3))
    assert [len(s.blocks) for s in model.stages] == [3, 4, 6, 3]
    assert [s.sr_ratio for s in model.stages] == [8, 4, 2, 1]
    assert model.stages[2].blocks[0].attn.num_heads == 5
    assert model.stages[0].blocks[0].ffn.layers[0][0].out_features == 512
    # default eps reproduces the official blocks (torch default, 1e-5)
    assert model.stages[0].blocks[0].norm1.eps == 1e-5


@pytest.mark.parametrize('sr, hw', [(1, (4, 4)), (2, (8, 6)), (4, (8, 8)),
                                    (8, (12, 16))])
def test_spatial_reduction_equals_pooling_and_conv(sr, hw):
    """Pooling a channels-last view + the 1x1 conv as a linear map gives
    the values and gradients of avg_pool2d + Conv2d on an NCHW copy."""
    import torch.nn.functional as F
    from um_mae.models.backbones.pvt import PoolingSRAttention
    torch.manual_seed(0)
    attn = PoolingSRAttention(16, 2).double()
    for p in attn.parameters():  # break the init symmetries
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(3, hw[0] * hw[1], 16, dtype=torch.float64)

    def plain(x):
        B, N, C = x.shape
        q = attn.q(x).reshape(B, N, 2, C // 2).transpose(1, 2)
        kv = x.transpose(1, 2).reshape(B, C, *hw)
        kv = attn.sr(F.avg_pool2d(kv, sr))
        kv = attn.norm(kv.flatten(2).transpose(1, 2))
        k, v = attn.kv(kv).reshape(B, -1, 2, 2, C // 2).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return attn.proj(out.transpose(1, 2).reshape(B, N, C))

    results = []
    for fn in (lambda x: attn(x, hw, sr), plain):
        attn.zero_grad()
        xi = x.clone().requires_grad_()
        out = fn(xi)
        weight = torch.linspace(-1, 1, out.numel()).view_as(out)
        (out * weight).sum().backward()
        results.append((out, xi.grad,
                        [p.grad.clone() for p in attn.parameters()]))
    (out, grad_x, grads), (ref, ref_grad_x, ref_grads) = results
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad_x, ref_grad_x)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad)
