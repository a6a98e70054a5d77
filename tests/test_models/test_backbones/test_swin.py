# Copyright (c) um-mae contributors. All rights reserved.
import pytest
import torch
from conftest import SWIN_FIXTURE_ARCH
from mmpretrain.models import ImageClassifier

from um_mae.models.backbones import UMSwinTransformer
from um_mae.models.converters import convert_official_swin
from um_mae.models.utils import visible_block_order
from um_mae.models.utils.windows import CompactPositions, window_layout

TINY_ARCH = dict(
    embed_dims=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], pos_mlp_dims=8)


def _fixture_swin(state_dict, **kwargs):
    kwargs.setdefault('out_indices', (0, 1, 2, 3))
    model = UMSwinTransformer(arch=SWIN_FIXTURE_ARCH, **kwargs)
    incompatible = model.load_state_dict(
        convert_official_swin(state_dict), strict=False)
    assert not incompatible.missing_keys
    return model.double().eval()


def _mae_inputs(ref):
    return (ref['img'].double(), ref['mask'].view(2, 16, 16),
            ref['secondary_mask'].view(2, 16, 16))


def _assert_close(actual, expected, atol=1e-5):
    assert actual.shape == expected.shape
    diff = (actual.double() - expected.double()).abs().max().item()
    assert diff <= atol, diff


def _record_coords(monkeypatch):
    """Record the window coordinates the compact blocks take biases of."""
    seen = []
    original = CompactPositions.window_coords

    def spy(self, layout):
        coords = original(self, layout)
        seen.append((layout, coords.clone()))
        return coords

    monkeypatch.setattr(CompactPositions, 'window_coords', spy)
    return seen


def test_archs():
    # build the large model without allocating memory
    with torch.device('meta'):
        large = UMSwinTransformer(arch='large')
    assert large.num_features == [192, 384, 768, 1536]
    assert [len(s.blocks) for s in large.stages] == [2, 2, 18, 2]
    attn = large.stages[3].blocks[0].attn
    assert attn.rel_pos_mlp[0].out_channels == 64
    assert attn.num_heads == 48
    tiny = UMSwinTransformer(arch='tiny')
    assert tiny.stages[0].blocks[0].attn.rel_pos_mlp[0].out_channels == 32
    assert tiny.stages[2].blocks[5].attn.num_heads == 12
    assert tiny.stages[1].downsample.proj.weight.shape == (192, 96, 2, 2)
    assert tiny.stages[0].downsample is None

    with pytest.raises(ValueError, match='arch'):
        UMSwinTransformer(arch='huge')
    with pytest.raises(ValueError, match='keys'):
        UMSwinTransformer(arch=dict(embed_dims=8))
    with pytest.raises(ValueError, match='out_type'):
        UMSwinTransformer(arch=TINY_ARCH, out_type='cls_token')
    with pytest.raises(ValueError, match='out_indices'):
        UMSwinTransformer(
            arch=TINY_ARCH, out_type='avg_featmap', out_indices=(2, 3))
    with pytest.raises(ValueError, match=r'out_indices=\(4,\) must pick '):
        UMSwinTransformer(arch=TINY_ARCH, out_indices=(4, ))


def test_layernorm_eps_default_reproduces_official():
    model = UMSwinTransformer(arch=TINY_ARCH, out_type='avg_featmap')
    assert model.patch_embed.norm.eps == 1e-6
    assert model.stages[1].downsample.norm.eps == 1e-6
    assert model.fc_norm.eps == 1e-6
    assert model.stages[0].blocks[0].norm1.eps == 1e-5
    assert model.stages[0].blocks[0].norm2.eps == 1e-5
    model = UMSwinTransformer(
        arch=TINY_ARCH, block_norm_cfg=dict(type='LN', eps=1e-6))
    assert model.stages[0].blocks[1].norm2.eps == 1e-6


def test_window_layout():
    assert window_layout((32, 32), 8, shifted=True) == ((8, 8), (4, 4))
    assert window_layout((8, 8), 8, shifted=True) == ((8, 8), (0, 0))
    assert window_layout((4, 4), 8, shifted=False) == ((4, 4), (0, 0))
    # rectangular maps: each side follows the rule on its own
    assert window_layout((7, 40), 16, shifted=True) == ((7, 16), (0, 8))


@pytest.mark.parametrize('name,compact', [('mae_swin.pt', True),
                                          ('ft_swin.pt', False)])
def test_block_layouts_match_reference(reference, name, compact):
    ref = reference(name)
    model = UMSwinTransformer(arch=SWIN_FIXTURE_ARCH, window_size=16)
    rows = model.block_layouts(256, compact=compact)
    expected = ref['config']['blocks']
    assert len(rows) == len(expected)
    for row, exp in zip(rows, expected):
        assert row['dim'] == exp['dim']
        assert row['num_heads'] == exp['num_heads']
        assert row['downsample'] == exp['downsample']
        assert list(row['input_resolution']) == exp['input_resolution']
        assert row['window_size'] == (exp['window_size'], ) * 2
        assert row['shift_size'] == (exp['shift_size'], ) * 2


def test_packed_coordinates_are_true_positions(reference):
    ref = reference('mae_swin.pt')
    img, mask, secondary = _mae_inputs(ref)
    model = _fixture_swin(ref['state_dict'], with_vis_mask_token=True)
    with torch.no_grad():
        _, coords = model.compact_embed(img, mask, secondary)
    assert coords.shape == (2, 32, 32, 2)
    _assert_close(coords, ref['pos_hw_compact'], atol=0)
    # cell (4a + i, 4b + j) holds patch (i, j) of the token kept in block
    # (a, b): its image-grid position is (4 * row + i, 4 * col + j)
    raster = visible_block_order(mask).view(2, 8, 1, 8, 1)
    i = torch.arange(4).view(1, 1, 4, 1, 1)
    j = torch.arange(4).view(1, 1, 1, 1, 4)
    rows = (4 * (raster // 16) + i).expand(2, 8, 4, 8, 4).reshape(2, 32, 32)
    cols = (4 * (raster % 16) + j).expand(2, 8, 4, 8, 4).reshape(2, 32, 32)
    assert torch.equal(coords[..., 0].long(), rows)
    assert torch.equal(coords[..., 1].long(), cols)
    # the primary mask decides the position, not the secondary one
    assert (secondary & ~mask).any()


def test_coordinates_roll_with_shift_and_halve_at_merge(
        reference, monkeypatch):
    ref = reference('mae_swin.pt')
    img, mask, secondary = _mae_inputs(ref)
    model = _fixture_swin(ref['state_dict'], with_vis_mask_token=True)
    seen = _record_coords(monkeypatch)
    with torch.no_grad():
        _, coords = model.compact_embed(img, mask, secondary)
        model(img, mask, secondary)
    # once per window layout of a stage, shared by its blocks: 32x32 and
    # 16x16 maps have plain and shifted 8x8 windows, 8x8 and 4x4 maps one
    # global window
    assert [layout for layout, _ in seen] == [
        ((8, 8), (0, 0)), ((8, 8), (4, 4)), ((8, 8), (0, 0)),
        ((8, 8), (4, 4)), ((8, 8), (0, 0)), ((4, 4), (0, 0))
    ]

    def windows(c, w):
        N, H, W, _ = c.shape
        c = c.view(N, H // w, w, W // w, w, 2).permute(0, 1, 3, 2, 4, 5)
        return c.reshape(-1, w * w, 2)

    # block 0: plain 8x8 windows of the packed coordinates
    assert torch.equal(seen[0][1], windows(coords, 8))
    # block 1: the coordinates are rolled by half a window with the tokens
    rolled = torch.roll(coords, shifts=(-4, -4), dims=(1, 2))
    assert torch.equal(seen[1][1], windows(rolled, 8))
    # stage 2: merged token = its top-left source token, halved
    merged = coords[:, ::2, ::2] / 2
    assert torch.equal(seen[2][1], windows(merged, 8))
    # stage 4 (4x4 map): one global window, no shift
    last = coords[:, ::8, ::8] / 8
    assert torch.equal(seen[5][1], windows(last, 4))


@pytest.mark.parametrize('size', [(256, 256), (128, 512)])
def test_lattice_bias_equals_per_pair_mlp(size):
    """The MLP run once on the lattice of offsets gives every pair the
    value (and the gradient) of the MLP run on that pair's offset."""
    torch.manual_seed(0)
    model = UMSwinTransformer(
        arch=TINY_ARCH, with_vis_mask_token=True).double()
    img = torch.randn(2, 3, *size, dtype=torch.float64)
    h, w = size[0] // 16, size[1] // 16
    keep = torch.randint(0, 4, (2, h // 2 * w // 2))
    mask = torch.ones(2, h // 2 * w // 2, 4, dtype=torch.bool)
    mask.scatter_(2, keep.unsqueeze(-1), False)
    mask = mask.reshape(2, h // 2, w // 2, 2, 2).permute(0, 1, 3, 2, 4)
    mask = mask.reshape(2, h, w)

    def run(positions):
        model.zero_grad()
        tokens, coords = model.compact_embed(img, mask)
        grid = (size[0] // 4, size[1] // 4)
        coords = CompactPositions(coords, grid) if positions else coords
        out = model._run_stages(tokens, coords, model.compact_window_size)
        out[-1].square().sum().backward()
        return out[-1], {
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        }

    out, grads = run(True)
    ref_out, ref_grads = run(False)
    torch.testing.assert_close(out, ref_out)
    assert set(grads) == set(ref_grads)
    assert any('rel_pos_mlp' in n for n in grads)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


def test_finetune_fixture_parity(reference):
    ref = reference('ft_swin.pt')
    model = _fixture_swin(ref['state_dict'], window_size=16)
    with torch.no_grad():
        feats = model(ref['img'].double())
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8]
    for feat, expected in zip(feats, ref['stage_feats']):
        _assert_close(feat, expected)


def test_classifier_logits_parity(reference):
    ref = reference('ft_swin.pt')
    classifier = ImageClassifier(
        backbone=dict(
            type='UMSwinTransformer',
            arch=SWIN_FIXTURE_ARCH,
            window_size=16,
            out_indices=-1,
            out_type='avg_featmap'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=96))
    state = {
        f'backbone.{k}': v
        for k, v in convert_official_swin(ref['state_dict']).items()
    }
    state['head.fc.weight'] = ref['state_dict']['head.weight']
    state['head.fc.bias'] = ref['state_dict']['head.bias']
    classifier.load_state_dict(state, strict=True)
    classifier.double().eval()
    with torch.no_grad():
        logits = classifier(ref['img'].double(), mode='tensor')
    _assert_close(logits, ref['logits'])


def test_pretrain_fixture_parity(reference):
    ref = reference('mae_swin.pt')
    img, mask, secondary = _mae_inputs(ref)
    model = _fixture_swin(ref['state_dict'], with_vis_mask_token=True)
    with torch.no_grad():
        tokens, _ = model.compact_embed(img, mask, secondary)
        feats = model(img, mask, secondary)
    _assert_close(tokens.permute(0, 3, 1, 2), ref['enc_input'])
    for feat, expected in zip(feats, ref['enc_stage_feats']):
        _assert_close(feat, expected)
    # the final pre-training norm (official `norm.*`, eps 1e-6) is applied
    # outside the backbone; here by a plain LayerNorm
    norm = torch.nn.LayerNorm(96, eps=1e-6).double()
    norm.load_state_dict({
        'weight': ref['state_dict']['norm.weight'],
        'bias': ref['state_dict']['norm.bias']
    })
    with torch.no_grad():
        latent = norm(feats[-1].flatten(2).transpose(1, 2))
    _assert_close(latent, ref['latent'])


def test_dense_mode_any_input_size():
    model = UMSwinTransformer(
        arch=TINY_ARCH, window_size=8, out_indices=(0, 1, 2, 3))
    model.eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 200, 300))
    # strides 4, 8, 16, 32 with ceil rounding
    assert [tuple(f.shape[-2:]) for f in feats] == [(50, 75), (25, 38),
                                                    (13, 19), (7, 10)]
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    assert all(torch.isfinite(f).all() for f in feats)


def test_dense_bias_equals_true_coordinate_bias(monkeypatch):
    """Dense mode uses in-window offsets; they equal the true offsets on
    every pair that the shifted-window mask does not hide."""
    torch.manual_seed(0)
    model = UMSwinTransformer(
        arch=TINY_ARCH, window_size=4, out_indices=(0, 1)).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        tokens = model._embed(x)
        grid = torch.stack(
            torch.meshgrid(
                torch.arange(16.), torch.arange(16.), indexing='ij'),
            -1).double().expand(2, -1, -1, -1)
        dense = model._run_stages(tokens, None, 4)
        true_coords = model._run_stages(tokens, grid, 4)
    for a, b in zip(dense, true_coords):
        _assert_close(a, b, atol=1e-12)


def test_compact_size_errors(reference):
    model = UMSwinTransformer(arch=TINY_ARCH)
    model.check_compact_size((256, 256))
    model.check_compact_size((512, 128))
    with pytest.raises(ValueError, match=r'224.*\b256\b'):
        model.check_compact_size((224, 224))
    with pytest.raises(ValueError, match='cannot be pre-trained'):
        model.block_layouts(384, compact=True)
    ref = reference('mae_swin.pt')
    mask = ref['mask'].view(2, 16, 16)
    with pytest.raises(ValueError, match='224'):
        model(torch.randn(2, 3, 224, 224), mask[:, :14, :14])


def test_mask_errors(reference):
    ref = reference('mae_swin.pt')
    _, mask, secondary = _mae_inputs(ref)
    img = torch.randn(2, 3, 256, 256)
    model = UMSwinTransformer(arch=TINY_ARCH)
    with pytest.raises(ValueError, match='with_vis_mask_token=True'):
        model(img, mask, secondary)
    with pytest.raises(ValueError, match='uniform'):
        model(img, torch.zeros(2, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'\(N, h, w\)'):
        model(img, mask.flatten(1))
    model = UMSwinTransformer(arch=TINY_ARCH, with_vis_mask_token=True)
    with pytest.raises(ValueError, match='superset'):
        model(img, mask, mask & secondary & ~mask)


def test_secondary_masked_tokens_use_vis_mask_token(reference):
    ref = reference('mae_swin.pt')
    img, mask, secondary = _mae_inputs(ref)
    model = UMSwinTransformer(
        arch=TINY_ARCH, with_vis_mask_token=True).double().eval()
    with torch.no_grad():
        tokens, _ = model.compact_embed(img, mask, secondary)
        plain, _ = model.compact_embed(img, mask)
        expected = model.patch_embed.norm(model.vis_mask_token).flatten()
    replaced = (tokens != plain).any(-1)  # (N, 32, 32)
    # 16 secondary-masked 16-px tokens of 4x4 patches per sample
    assert replaced.sum().item() == 2 * 16 * 16
    assert torch.allclose(tokens[replaced], expected.expand(512, -1))


def test_simmim_mask_token_mode():
    torch.manual_seed(0)
    model = UMSwinTransformer(
        arch=TINY_ARCH, window_size=4, mask_mode='mask_token').eval()
    assert model.mask_token.shape == (1, 1, 8)
    x = torch.randn(2, 3, 64, 64)
    mask = torch.rand(2, 4, 4) < 0.5
    with torch.no_grad():
        out = model(x, mask)[0]
        # pixels under the mask do not matter
        x2 = x.clone()
        hidden = mask.repeat_interleave(16, 1).repeat_interleave(16, 2)
        x2[hidden[:, None].expand_as(x)] = 5.
        assert torch.allclose(model(x2, mask)[0], out, atol=1e-5)
        assert not torch.allclose(model(x2)[0], model(x)[0], atol=1e-3)
        # an empty mask is the dense forward
        no_mask = torch.zeros_like(mask)
        assert torch.allclose(model(x, no_mask)[0], model(x)[0])
    assert out.shape == (2, 64, 2, 2)
    with pytest.raises(ValueError, match='tile'):
        model(x, mask[:, :3])


def test_with_cp_and_drop_path_train():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    plain = UMSwinTransformer(arch=TINY_ARCH, window_size=4)
    ckpt = UMSwinTransformer(arch=TINY_ARCH, window_size=4, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    for model in (plain, ckpt):
        model.train()
        model(x.requires_grad_())[0].sum().backward()
    grads = [(p.grad, q.grad)
             for p, q in zip(plain.parameters(), ckpt.parameters())]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in grads)

    # drop path is active in training only: two training passes differ,
    # evaluation passes do not (planted: the blocks built with drop_prob=0)
    model = UMSwinTransformer(
        arch=TINY_ARCH, window_size=4, drop_path_rate=0.5).train()
    assert model.stages[3].blocks[1].drop_path.drop_prob == 0.5
    with torch.no_grad():
        train = [model.train()(x)[-1] for _ in range(2)]
        evals = [model.eval()(x)[-1] for _ in range(2)]
    assert train[0].shape == (2, 64, 2, 2)
    assert not torch.equal(train[0], train[1])
    assert torch.equal(evals[0], evals[1])


def test_init_weights_and_layer_depth():
    model = UMSwinTransformer(arch=TINY_ARCH, with_vis_mask_token=True)
    model.init_weights()
    block = model.stages[0].blocks[0]
    assert torch.all(block.attn.qkv.bias == 0)
    assert torch.all(block.norm1.weight == 1)
    num_layers = sum(TINY_ARCH['depths']) + 2
    depth = model.get_layer_depth
    assert depth('backbone.patch_embed.projection.weight',
                 'backbone.') == (0, num_layers)
    assert depth('backbone.stages.0.blocks.1.ffn.layers.1.weight',
                 'backbone.')[0] == 2
    # merging belongs to the first block of its stage (official rule)
    assert depth('backbone.stages.2.downsample.proj.weight',
                 'backbone.')[0] == 5
    assert depth('backbone.stages.2.blocks.0.norm1.weight',
                 'backbone.')[0] == 5
    assert depth('head.fc.weight', 'backbone.')[0] == num_layers - 1


def test_converter_keys(reference):
    ref = reference('mae_swin.pt')
    converted = convert_official_swin(ref['state_dict'])
    assert 'stages.1.downsample.proj.weight' in converted
    assert 'stages.3.blocks.1.attn.rel_pos_mlp.2.bias' in converted
    assert not any(
        k.startswith(('decoder', 'norm.', 'mask_token')) for k in converted)
    model = UMSwinTransformer(arch=SWIN_FIXTURE_ARCH, with_vis_mask_token=True)
    model.load_state_dict(converted, strict=True)
    # module. prefixes are stripped, explicit depths accepted
    prefixed = {f'module.{k}': v for k, v in ref['state_dict'].items()}
    assert convert_official_swin(prefixed, depths=[2, 2, 2, 2]).keys() == \
        converted.keys()
    with pytest.raises(ValueError, match='depths'):
        convert_official_swin(ref['state_dict'], depths=[2, 2, 6, 2])


@pytest.mark.dense
def test_cross_scope_build():
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    for registry in (DET_MODELS, SEG_MODELS):
        model = registry.build(
            dict(type='mmpretrain.UMSwinTransformer', arch=TINY_ARCH))
        assert isinstance(model, UMSwinTransformer)


def test_lattice_lookup_equals_per_pair_mlp():
    """The lattice lookup gives the per-pair MLP's values and gradients,
    also for half-integer positions (after a merge) and shifted windows."""
    from um_mae.models.backbones.swin import ContinuousWindowMSA
    torch.manual_seed(0)
    attn = ContinuousWindowMSA(16, 2, pos_mlp_dims=8).double()
    # patch indices of a 16x16 grid, halved once: offsets k / 2, |k| < 16
    coords = torch.randint(0, 16, (2, 12, 12, 2)).double() / 2
    positions = CompactPositions(coords, (16, 16), step=0.5)
    for layout in [((6, 6), (0, 0)), ((6, 6), (3, 3))]:
        looked_up = positions.bias(attn, layout)
        direct = attn.position_bias(positions.window_coords(layout))
        assert looked_up.shape == (2 * 4, 2, 36, 36)
        torch.testing.assert_close(looked_up, direct, rtol=0, atol=1e-12)
        grads = []
        for out in (looked_up, direct):
            g = torch.autograd.grad((out * direct.detach()).sum(),
                                    list(attn.rel_pos_mlp.parameters()))
            grads.append(g)
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # the lattice spans every offset of the grid: (2 * 16 - 1)**2 points
    assert positions.lattice().shape == (2, 31, 31)
    index = positions.window_index(((6, 6), (0, 0)))
    assert 0 <= index.min() and index.max() < 31 * 31
