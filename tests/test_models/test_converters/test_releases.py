# Copyright (c) um-mae contributors. All rights reserved.
"""Every initialization of the five-arm transfer protocol, loaded exactly.

Each test writes a small random-weight checkpoint in the exact on-disk
layout of a release (MAE, timm, DeiT, MoCo v3, BEiT), loads it
by content with ``CheckedPretrained`` into ``WindowedViT`` and ``UMViT``,
and compares the patch embedding and every block's output with a plain
torch forward of the source architecture (float64, one window covering the
token grid). The reference models below name their parameters as the
releases do, so their ``state_dict()`` is the release's layout.
mmpretrain's own releases are checked against mmpretrain's layers in
``test_pretrained.py``.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import um_mae  # noqa: F401
from um_mae.models.backbones import UMViT, WindowedViT
from um_mae.models.converters import detect_format, load_pretrained

DIMS, HEADS, DEPTH, IMG = 32, 4, 4, 64  # 4 x 4 tokens of 16 px
ARCH = dict(
    embed_dims=DIMS,
    num_layers=DEPTH,
    num_heads=HEADS,
    feedforward_channels=4 * DIMS)
GRID = IMG // 16


# reference architectures (plain torch, the releases' parameter names)
class Mlp(nn.Module):

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(DIMS, 4 * DIMS)
        self.fc2 = nn.Linear(4 * DIMS, DIMS)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def beit_index(h, w):
    """BEiT's relative position index for a grid plus a class token."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(h), torch.arange(w),
                       indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    n = (2 * h - 1) * (2 * w - 1) + 3
    index = torch.zeros(h * w + 1, h * w + 1, dtype=torch.long)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = n - 3
    index[0:, 0] = n - 2
    index[0, 0] = n - 1
    return index


class Attention(nn.Module):
    """timm attention; BEiT's with ``beit=True`` (q / v bias, no qkv bias,
    optionally its own relative position bias table)."""

    def __init__(self, beit=False, table=False):
        super().__init__()
        self.qkv = nn.Linear(DIMS, 3 * DIMS, bias=not beit)
        if beit:
            self.q_bias = nn.Parameter(torch.randn(DIMS))
            self.v_bias = nn.Parameter(torch.randn(DIMS))
        if table:
            self.relative_position_bias_table = nn.Parameter(
                torch.randn((2 * GRID - 1)**2 + 3, HEADS))
            self.register_buffer('relative_position_index',
                                 beit_index(GRID, GRID))
        self.proj = nn.Linear(DIMS, DIMS)

    def forward(self, x, bias=None):
        B, N, C = x.shape
        qkv_bias = None
        if hasattr(self, 'q_bias'):
            qkv_bias = torch.cat(
                [self.q_bias,
                 torch.zeros_like(self.v_bias), self.v_bias])
        else:
            qkv_bias = self.qkv.bias
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = qkv.reshape(B, N, 3, HEADS, -1).permute(2, 0, 3, 1, 4)
        attn = q * (C // HEADS)**-0.5 @ k.transpose(-2, -1)
        if hasattr(self, 'relative_position_bias_table'):
            bias = table_bias(self.relative_position_bias_table,
                              self.relative_position_index)
        if bias is not None:
            attn = attn + cls_free(bias, N)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


def table_bias(table, index):
    """(heads, 1 + L, 1 + L) bias of a BEiT table."""
    return table[index.view(-1)].view(*index.shape, -1).permute(2, 0, 1)


def cls_free(bias, n):
    """The bias rows / columns of the tokens present (no class token when
    the sequence is the patches only)."""
    return bias[:, -n:, -n:]


class Block(nn.Module):

    def __init__(self, beit=False, table=False, layer_scale=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIMS, eps=1e-6)
        self.attn = Attention(beit, table)
        self.norm2 = nn.LayerNorm(DIMS, eps=1e-6)
        self.mlp = Mlp()
        if layer_scale:
            self.gamma_1 = nn.Parameter(torch.rand(DIMS) + 0.5)
            self.gamma_2 = nn.Parameter(torch.rand(DIMS) + 0.5)

    def forward(self, x, bias=None):
        g1 = getattr(self, 'gamma_1', 1.)
        g2 = getattr(self, 'gamma_2', 1.)
        x = x + g1 * self.attn(self.norm1(x), bias)
        return x + g2 * self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, DIMS, 16, 16)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, L, C)


class ReferenceViT(nn.Module):
    """timm ``VisionTransformer`` (and MAE's / DeiT's / MoCo v3's, which
    are timm's), or BEiT's with ``beit=True``."""

    def __init__(self,
                 head='norm',
                 dist_token=False,
                 beit=False,
                 shared_table=False,
                 abs_pos=True):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIMS))
        if dist_token:
            self.dist_token = nn.Parameter(torch.randn(1, 1, DIMS))
        extra = 2 if dist_token else 1
        if abs_pos:
            self.pos_embed = nn.Parameter(
                torch.randn(1, GRID * GRID + extra, DIMS))
        self.patch_embed = PatchEmbed()
        if shared_table:
            self.rel_pos_bias = nn.Module()
            self.rel_pos_bias.relative_position_bias_table = nn.Parameter(
                torch.randn((2 * GRID - 1)**2 + 3, HEADS))
            self.rel_pos_bias.register_buffer('relative_position_index',
                                              beit_index(GRID, GRID))
        self.blocks = nn.ModuleList([
            Block(beit, table=beit and not shared_table, layer_scale=beit)
            for _ in range(DEPTH)
        ])
        if head in ('norm', 'norm+head'):
            self.norm = nn.LayerNorm(DIMS, eps=1e-6)
        if head in ('fc_norm+head', ):
            self.fc_norm = nn.LayerNorm(DIMS, eps=1e-6)
        if 'head' in (head or ''):
            self.head = nn.Linear(DIMS, 10)
        if dist_token:
            self.head_dist = nn.Linear(DIMS, 10)
        with torch.no_grad():  # no zeros: every tensor must be loaded
            for p in self.parameters():
                p.add_(torch.randn_like(p) * 0.1)

    def run(self, img, cls=True):
        """Patch embedding, then every block's output.

        With ``cls=False`` the blocks run on the patch tokens alone, as a
        dense backbone runs them; a distillation token is never used.
        """
        patches = self.patch_embed(img)
        x = patches
        if hasattr(self, 'pos_embed'):
            pos = self.pos_embed
            if hasattr(self, 'dist_token'):  # its slot goes with the token
                pos = torch.cat([pos[:, :1], pos[:, 2:]], 1)
            x = x + pos[:, 1:]
            cls_token = self.cls_token + pos[:, :1]
        else:
            cls_token = self.cls_token
        if cls:
            x = torch.cat([cls_token.expand(len(x), -1, -1), x], 1)
        bias = None
        if hasattr(self, 'rel_pos_bias'):
            bias = table_bias(self.rel_pos_bias.relative_position_bias_table,
                              self.rel_pos_bias.relative_position_index)
        outs = []
        for block in self.blocks:
            x = block(x, bias)
            outs.append(x)
        return patches, outs


def _randn_like(sd, prefix):
    return {prefix + k: torch.randn(v.shape) for k, v in sd.items()}


def _mae_decoder():
    """The decoder keys of a MAE pre-training checkpoint."""
    dec = nn.Module()
    dec.decoder_embed = nn.Linear(DIMS, 16)
    dec.mask_token = nn.Parameter(torch.zeros(1, 1, 16))
    dec.decoder_pos_embed = nn.Parameter(torch.zeros(1, 17, 16))
    dec.decoder_blocks = nn.ModuleList([nn.Module()])
    dec.decoder_blocks[0].norm1 = nn.LayerNorm(16)
    dec.decoder_blocks[0].attn = nn.Linear(16, 48)
    dec.decoder_norm = nn.LayerNorm(16)
    dec.decoder_pred = nn.Linear(16, 768)
    return dec.state_dict()


def _mlp_keys(name, layers):
    """MoCo v3's projector / predictor: Linear (no bias) + BN, ...."""
    mlp = nn.Sequential()
    for i in range(layers):
        mlp.append(nn.Linear(DIMS, DIMS, bias=False))
        mlp.append(nn.BatchNorm1d(DIMS, affine=i < layers - 1))
        if i < layers - 1:
            mlp.append(nn.ReLU())
    return {f'{name}.{k}': v for k, v in mlp.state_dict().items()}


def mae_pretrain():
    ref = ReferenceViT('norm')
    return ref, {'model': {**ref.state_dict(), **_mae_decoder()}}


def mae_encoder():
    ref = ReferenceViT('norm')
    return ref, {'model': ref.state_dict()}


def mae_finetuned():  # models_vit.VisionTransformer(global_pool=True)
    ref = ReferenceViT('fc_norm+head')
    return ref, {'model': ref.state_dict()}


def timm_bin():  # pytorch_model.bin: a bare state dict
    ref = ReferenceViT('norm+head')
    return ref, ref.state_dict()


def timm_safetensors():  # written with safetensors in _write
    return timm_bin()


def deit():
    ref = ReferenceViT('norm+head')
    return ref, {'model': ref.state_dict()}


def deit_distilled():
    ref = ReferenceViT('norm+head', dist_token=True)
    return ref, {'model': ref.state_dict()}


def mocov3():  # main_moco.py: DDP model, projector in base_encoder.head
    ref = ReferenceViT('norm')
    base = {f'module.base_encoder.{k}': v for k, v in ref.state_dict().items()}
    state_dict = {
        **base,
        **_mlp_keys('module.base_encoder.head', 3),
        **_randn_like(ref.state_dict(), 'module.momentum_encoder.'),
        **_mlp_keys('module.momentum_encoder.head', 3),
        **_mlp_keys('module.predictor', 2),
    }
    return ref, dict(
        epoch=300,
        arch='vit_base',
        state_dict=state_dict,
        optimizer={
            'state': {},
            'param_groups': [{
                'lr': 0.1,
                'params': [0]
            }]
        },
        scaler={'scale': 65536.0})


def beit_pretrain():  # shared table, layer scale, q / v bias, MIM head
    ref = ReferenceViT(None, beit=True, shared_table=True, abs_pos=False)
    sd = ref.state_dict()
    sd.update(
        mask_token=torch.randn(1, 1, DIMS),
        **{
            'norm.weight': torch.randn(DIMS),
            'norm.bias': torch.randn(DIMS),
            'lm_head.weight': torch.randn(64, DIMS),
            'lm_head.bias': torch.randn(64)
        })
    return ref, {'model': sd}


def beit_finetuned():  # per-block tables, mean pooling head
    ref = ReferenceViT('fc_norm+head', beit=True, abs_pos=False)
    return ref, {'model': ref.state_dict()}


RELEASES = {
    # name: (builder, detected release, UMViT kwargs for an exact match)
    'mae-pretrain': (mae_pretrain, 'MAE (official, pre-train)', {}),
    'mae-encoder':
    (mae_encoder, 'MAE encoder (official) or headless timm ViT', {}),
    'mae-finetuned': (mae_finetuned, 'MAE (official, fine-tuned)',
                      dict(final_norm=False, out_type='avg_featmap')),
    'timm-bin': (timm_bin, 'timm ViT', {}),
    'timm-safetensors': (timm_safetensors, 'timm ViT', {}),
    'deit': (deit, 'timm ViT', {}),
    'deit-distilled': (deit_distilled, 'DeiT distilled', {}),
    'mocov3': (mocov3, 'MoCo v3 (official, base encoder)', {}),
    'beit-pretrain': (beit_pretrain, 'BEiT (unilm)', None),
    'beit-finetuned': (beit_finetuned, 'BEiT (unilm)', None),
}
BEIT_OPTIONS = dict(layer_scale_init_value=0.1, use_abs_pos_embed=False)


def _write(tmp_path, name, checkpoint):
    if name.endswith('safetensors'):
        from safetensors.torch import save_file
        path = str(tmp_path / 'model.safetensors')
        save_file({k: v.contiguous() for k, v in checkpoint.items()}, path)
        return path
    suffix = {'mocov3': '.pth.tar', 'timm-bin': '.bin'}.get(name, '.pth')
    path = str(tmp_path / f'{name}{suffix}')
    torch.save(checkpoint, path)
    return path


def _vitdet(path, beit):
    model = WindowedViT(
        arch=ARCH,
        img_size=IMG,
        window_size=GRID,  # one window covers the grid
        init_cfg=dict(  # as the configs: releases need no prefix
            type='CheckedPretrained',
            checkpoint=path,
            prefix='backbone.'),
        **(BEIT_OPTIONS if beit else {}))
    model.init_weights()
    model.double().eval()
    return model


@pytest.fixture
def img():
    torch.manual_seed(1)
    return torch.randn(2, 3, IMG, IMG, dtype=torch.float64)


def _assert_equal(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('name', list(RELEASES))
def test_vitdet_equals_the_release(tmp_path, img, name, mm_log):
    torch.manual_seed(0)
    build, release, _ = RELEASES[name]
    ref, checkpoint = build()
    path = _write(tmp_path, name, checkpoint)

    model = _vitdet(path, beit=name.startswith('beit'))
    out = mm_log()
    assert f'Loaded {path} into WindowedViT: {release}' in out
    assert 'official UM-MAE' not in out

    ref.double()
    with torch.no_grad():
        patches, blocks = ref.run(img, cls=False)
        x, hw = model.patch_embed(img)
        _assert_equal(x, patches)
        if model.pos_embed is not None:
            x = x + model.pos_embed[:, 1:]
        for layer, expected in zip(model.layers, blocks):
            x = layer(x, hw)
            _assert_equal(x, expected)
        # and through forward: the stride-16 map is block 3d/4's output
        stride16 = model(img)[2]
    _assert_equal(stride16, blocks[2].transpose(1, 2).reshape(2, DIMS, *hw))


@pytest.mark.parametrize('name',
                         [n for n, r in RELEASES.items() if r[2] is not None])
def test_umvit_equals_the_release(tmp_path, img, name):
    torch.manual_seed(0)
    build, _, kwargs = RELEASES[name]
    ref, checkpoint = build()
    path = _write(tmp_path, name, checkpoint)
    model = UMViT(
        arch=ARCH,
        img_size=IMG,
        out_indices=list(range(DEPTH)),
        init_cfg=dict(  # as the configs: releases need no prefix
            type='CheckedPretrained',
            checkpoint=path,
            prefix='backbone.'),
        **dict(dict(final_norm=False), **kwargs))
    model.init_weights()
    model.double().eval()
    if kwargs.get('out_type') == 'avg_featmap':
        model.out_type = 'raw'  # compare tokens, not the pooled features
    ref.double()
    with torch.no_grad():
        patches, blocks = ref.run(img, cls=True)
        _assert_equal(model.patch_embed(img)[0], patches)
        for ours, expected in zip(model(img), blocks):
            _assert_equal(ours, expected)


def test_release_names_are_detected_by_content():
    torch.manual_seed(0)
    for name, (build, release, _) in RELEASES.items():
        from um_mae.models.converters import unwrap
        assert detect_format(unwrap(build()[1])).name == release, name


def test_beit_needs_its_options(tmp_path):
    _, checkpoint = beit_pretrain()
    path = _write(tmp_path, 'beit-pretrain', checkpoint)
    with pytest.raises(ValueError) as info:
        load_pretrained(
            WindowedViT(arch=ARCH, img_size=IMG, window_size=GRID), path)
    msg = str(info.value)
    assert '\n' not in msg
    # no absolute position embedding in BEiT; layer scale unused
    assert 'trunk tensors of WindowedViT would stay unfilled (pos_embed)' \
        in msg
    assert 'change the outputs would not be used (layers.0.attn.gamma1.' \
        'weight' in msg
    assert 'build WindowedViT with layer_scale_init_value > 0' in msg
    assert 'use_abs_pos_embed=False' in msg

    # UMViT has no place for BEiT's relative position biases
    with pytest.raises(ValueError) as info:
        load_pretrained(
            UMViT(
                arch=ARCH,
                img_size=IMG,
                layer_cfgs=dict(layer_scale_init_value=0.1)), path)
    msg = str(info.value)
    assert 'layers.0.attn.relative_position_bias_table' in msg
    assert 'UMViT has no relative position biases' in msg
    assert 'BEiT needs a backbone with relative position biases' in msg


def test_beit_tables_are_resized_to_other_windows(tmp_path):
    """Li et al.: the pre-trained biases go to every block's table,
    interpolated to its window (or the global grid)."""
    torch.manual_seed(0)
    ref, checkpoint = beit_pretrain()
    path = _write(tmp_path, 'beit-pretrain', checkpoint)
    model = WindowedViT(
        arch=ARCH,
        img_size=IMG,
        window_size=2,
        global_indices=(DEPTH - 1, ),
        init_cfg=dict(  # as the configs: releases need no prefix
            type='CheckedPretrained',
            checkpoint=path,
            prefix='backbone.'),
        **BEIT_OPTIONS)
    model.init_weights()
    shared = ref.rel_pos_bias.relative_position_bias_table[:-3]  # (49, h)
    windowed, global_ = model.layers[0], model.layers[DEPTH - 1]
    assert global_.attn.window_size is None
    assert torch.equal(global_.attn.relative_position_bias_table, shared)
    table = windowed.attn.relative_position_bias_table  # 3 x 3 offsets
    assert table.shape == (9, HEADS)
    # corners aligned: the offset-0 entry and the extreme ones are kept
    grid = shared.t().reshape(HEADS, 7, 7)
    ours = table.t().reshape(HEADS, 3, 3)
    torch.testing.assert_close(ours[:, 1, 1], grid[:, 3, 3])
    torch.testing.assert_close(ours[:, 0, 0], grid[:, 0, 0])


# Li et al. section 3: shared tables (one for the windowed blocks, one for
# the global ones) and an absolute table in every arm
LI_BEIT = dict(layer_scale_init_value=0.1, transferred_pos=('rel', ))


def _li_vit(path, **kwargs):
    model = WindowedViT(
        arch=ARCH,
        img_size=IMG,
        window_size=GRID,  # a window covers the grid: exact comparisons
        global_indices=(1, 3),  # both kinds of block, so both tables
        rel_pos_bias='shared',
        init_cfg=dict(
            type='CheckedPretrained', checkpoint=path, prefix='backbone.'),
        **kwargs)
    model.init_weights()
    return model.double().eval()


def test_li_et_al_beit_arm_transfers_biases_exactly(tmp_path, img):
    """BEiT's shared table fills both shared tables, exactly; the absolute
    table is new (random); with it at zero the blocks are BEiT's."""
    torch.manual_seed(0)
    ref, checkpoint = beit_pretrain()
    model = _li_vit(_write(tmp_path, 'beit-pretrain', checkpoint), **LI_BEIT)
    table = checkpoint['model']['rel_pos_bias.relative_position_bias_table']
    for shared in (model.rel_pos_window, model.rel_pos_global):
        assert torch.equal(shared.relative_position_bias_table,
                           table[:-3].double())
    assert model.pos_embed.abs().sum() > 0  # random, not loaded
    ref.double()
    with torch.no_grad():
        model.pos_embed.zero_()
        _, blocks = ref.run(img, cls=False)
        stride16 = model(img)[2]
    expected = blocks[2].transpose(1, 2).reshape(2, DIMS, GRID, GRID)
    _assert_equal(stride16, expected)


def test_li_et_al_refuses_to_average_per_block_tables(tmp_path):
    torch.manual_seed(0)
    _, checkpoint = beit_finetuned()
    path = _write(tmp_path, 'beit-finetuned', checkpoint)
    with pytest.raises(
            ValueError,
            match=r'differs from .* not averaged.*'
            r"rel_pos_bias='per_block'"):
        _li_vit(path, **LI_BEIT)


def test_li_et_al_other_arms_transfer_the_absolute_table(tmp_path):
    torch.manual_seed(0)
    _, checkpoint = mae_pretrain()
    path = _write(tmp_path, 'mae-pretrain', checkpoint)
    model = _li_vit(path)
    assert torch.equal(model.pos_embed,
                       checkpoint['model']['pos_embed'].double())
    assert not model.rel_pos_window.relative_position_bias_table.any()
    assert not model.rel_pos_global.relative_position_bias_table.any()
    assert not any('relative_position_bias_table' in k
                   for k in model.state_dict() if k.startswith('layers.'))
    # a config that asks for transferred biases gets an error, not zeros
    with pytest.raises(ValueError, match='rel_pos_window'):
        _li_vit(path, transferred_pos=('abs', 'rel'))
