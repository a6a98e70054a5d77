# Copyright (c) um-mae contributors. All rights reserved.
"""Plain ViT with windowed and global attention, for dense tasks.

Li et al., "Benchmarking Detection Transfer Learning with Vision
Transformers", 2021, and Li, Mao, Girshick, He, "Exploring Plain Vision
Transformer Backbones for Object Detection" (ViTDet), 2022: a pre-trained
plain ViT is fine-tuned for detection with windowed attention in most blocks
and global attention in a few evenly spaced ones. The backbone returns
stride-16 maps; the pyramid a detector needs is built by a neck
(:mod:`um_mae.models.necks.vit_pyramids`), either from several blocks (Li et
al.) or from the last one (ViTDet's simple feature pyramid).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import LayerScale
from mmcv.cnn.bricks.drop import DropPath
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import Tensor

from ..converters import share_block_tables
from ..utils import (BackboneContractMixin, parse_arch, parse_indices,
                     resize_checkpoint_pos_embed)
from ..utils.windows import (pad_to_windows, window_partition,
                             window_unpartition)

__all__ = ['WindowedViT']


def resize_rel_pos_table(table: Tensor, table_size: Tuple[int, int],
                         grid: Tuple[int, int]) -> Tensor:
    """Resize a relative position bias table to another token grid.

    Args:
        table (Tensor): ``((2*th-1) * (2*tw-1), heads)``, learnt for a
            ``table_size = (th, tw)`` grid; row ``(dy + th-1) * (2*tw-1) +
            dx + tw-1`` holds the bias of a query ``dy`` rows and ``dx``
            columns after its key (BEiT's and Swin's layout).
        table_size (tuple[int, int]): ``(th, tw)``.
        grid (tuple[int, int]): The grid ``(h, w)`` to resize to (bicubic,
            corners aligned, so offset 0 stays offset 0).

    Returns:
        Tensor: ``((2*h-1) * (2*w-1), heads)``.
    """
    th, tw = table_size
    h, w = grid
    if (h, w) == (th, tw):
        return table
    heads = table.shape[1]
    table = table.t().reshape(1, heads, 2 * th - 1, 2 * tw - 1)
    table = F.interpolate(
        table, size=(2 * h - 1, 2 * w - 1), mode='bicubic', align_corners=True)
    return table.reshape(heads, -1).t()


def relative_position_bias(table: Tensor, table_size: Tuple[int, int],
                           grid: Tuple[int, int]) -> Tensor:
    """Expand a relative position bias table to the pairs of a token grid.

    Args:
        table (Tensor): ``((2*th-1) * (2*tw-1), heads)``, learnt for a
            ``table_size = (th, tw)`` grid (see :func:`resize_rel_pos_table`).
        table_size (tuple[int, int]): ``(th, tw)``.
        grid (tuple[int, int]): Grid ``(h, w)`` the attention runs on. When
            it differs from ``table_size`` the table is resized.

    Returns:
        Tensor: ``(heads, h*w, h*w)``; entry ``(i, j)`` is the bias for
        query token ``i`` attending to key token ``j`` (raster ids).
    """
    h, w = grid
    table = resize_rel_pos_table(table, table_size, grid)
    table = table.t().reshape(-1, 2 * h - 1, 2 * w - 1)  # (heads, 2h-1, 2w-1)
    rows = torch.arange(h, device=table.device)
    cols = torch.arange(w, device=table.device)
    dy = rows[:, None] - rows[None, :] + h - 1  # (h, h): query row, key row
    dx = cols[:, None] - cols[None, :] + w - 1
    # (heads, h, w, h, w) without an (hw, hw) index tensor
    bias = table[:, dy[:, None, :, None], dx[None, :, None, :]]
    return bias.reshape(-1, h * w, h * w)


class WindowRelPosAttention(BaseModule):
    """Windowed or global self-attention with a relative position bias.

    Keys ``qkv`` and ``proj`` are those of mmpretrain's
    ``MultiheadAttention``, so ViT checkpoints load unchanged. The bias table
    ``relative_position_bias_table`` is zero-initialised. With layer scale
    the output is scaled per channel by ``gamma1`` (mmpretrain's key
    ``attn.gamma1.weight``).

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        table_size (tuple[int, int]): Grid the bias table is learnt for (the
            window, or for global attention the pre-training grid, resized
            to the actual grid on the fly).
        window_size (int, optional): Side of the square windows; None for
            global attention. Defaults to None.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        attn_drop (float): Attention dropout. Defaults to 0.
        proj_drop (float): Output dropout. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale; 0 means no
            layer scale. Defaults to 0.
        own_table (bool): Hold a bias table; False when the backbone shares
            one table among blocks and passes it to :meth:`forward`.
            Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 table_size: Tuple[int, int],
                 window_size: Optional[int] = None,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 layer_scale_init_value: float = 0.,
                 own_table: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by '
                             f'num_heads={num_heads}; change one of them')
        self.num_heads = num_heads
        self.window_size = window_size
        self.table_size = tuple(table_size)
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gamma1 = LayerScale(
            embed_dims, scale=layer_scale_init_value
        ) if layer_scale_init_value > 0 else nn.Identity()
        th, tw = self.table_size
        if own_table:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * th - 1) * (2 * tw - 1), num_heads))

    def _attend(self, x: Tensor, grid: Tuple[int, int],
                key_pad: Optional[Tensor], table: Tensor) -> Tensor:
        """Attention inside groups of tokens. x: (B', n, C), n = h*w."""
        B, n, C = x.shape
        qkv = self.qkv(x).reshape(B, n, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B', heads, n, C/heads)
        bias = relative_position_bias(table, self.table_size, grid).to(q.dtype)
        bias = bias.unsqueeze(0)  # (1, heads, n, n)
        if key_pad is not None:
            # (B', 1, 1, n): padded keys get -inf; every window holds real
            # tokens, so no row is fully masked
            bias = bias.masked_fill(key_pad[:, None, None, :], float('-inf'))
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias,
            dropout_p=self.attn_drop if self.training else 0.)
        x = x.transpose(1, 2).reshape(B, n, C)
        return self.gamma1(self.proj_drop(self.proj(x)))

    def forward(self,
                x: Tensor,
                hw: Tuple[int, int],
                table: Optional[Tensor] = None) -> Tensor:
        """Attend within windows, or globally.

        Args:
            x (Tensor): Tokens ``(B, H*W, C)`` in raster order.
            hw (tuple[int, int]): Token grid ``(H, W)``.
            table (Tensor, optional): A shared bias table for
                ``table_size``; None uses the module's own. Defaults to
                None.

        Returns:
            Tensor: ``(B, H*W, C)``.
        """
        if table is None:
            table = self.relative_position_bias_table
        if self.window_size is None:
            return self._attend(x, hw, None, table)

        B, _, C = x.shape
        H, W = hw
        window = (self.window_size, self.window_size)
        x = pad_to_windows(x.view(B, H, W, C), window)
        Hp, Wp = x.shape[1:3]
        key_pad = None
        if (Hp, Wp) != (H, W):
            pad = torch.ones(1, Hp, Wp, 1, dtype=torch.bool, device=x.device)
            pad[:, :H, :W] = False
            key_pad = window_partition(pad, window)[0, ..., 0]  # (nW, WW)
            key_pad = key_pad.repeat(B, 1)  # (B * nW, WW)
        x = window_partition(x, window)  # (B, nW, WW, C), raster order
        x = self._attend(x.flatten(0, 1), window, key_pad, table)
        x = window_unpartition(x.view(B, -1, *x.shape[1:]), window, Hp, Wp)
        return x[:, :H, :W].reshape(B, H * W, C)


class SharedRelPosTable(nn.Module):
    """One relative position bias table that several blocks share.

    Args:
        num_heads (int): Attention heads.
        table_size (tuple[int, int]): Grid the table is learnt for.
    """

    def __init__(self, num_heads: int, table_size: Tuple[int, int]) -> None:
        super().__init__()
        self.table_size = tuple(table_size)
        th, tw = self.table_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * th - 1) * (2 * tw - 1), num_heads))


class WindowedViTBlock(BaseModule):
    """Pre-norm transformer block with window or global attention.

    The keys (``ln1``, ``attn.qkv``, ``attn.proj``, ``ln2``,
    ``ffn.layers.*``) follow mmpretrain's ``TransformerEncoderLayer``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        feedforward_channels (int): Hidden channels of the MLP.
        table_size (tuple[int, int]): Grid of the bias table.
        window_size (int, optional): Window side, None for global
            attention. Defaults to None.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention dropout rate. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        layer_scale_init_value (float): Initial layer scale of the
            attention and MLP branches; 0 means none. Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to ``dict(type='GELU')``.
        norm_cfg (dict): Norm layers. Defaults to
            ``dict(type='LN', eps=1e-6)``.
        with_cp (bool): Use activation checkpointing. Defaults to False.
        own_table (bool): The attention holds its own bias table (False:
            the backbone passes a shared one). Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 table_size: Tuple[int, int],
                 window_size: Optional[int] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 layer_scale_init_value: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 with_cp: bool = False,
                 own_table: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.ln1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = WindowRelPosAttention(
            embed_dims,
            num_heads,
            table_size=table_size,
            window_size=window_size,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            layer_scale_init_value=layer_scale_init_value,
            own_table=own_table)
        self.drop_path = DropPath(drop_path_rate)
        self.ln2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            act_cfg=act_cfg,
            layer_scale_init_value=layer_scale_init_value)

    def forward(self,
                x: Tensor,
                hw: Tuple[int, int],
                table: Optional[Tensor] = None) -> Tensor:
        """(B, H*W, C) -> (B, H*W, C); ``table``: a shared bias table."""

        def _forward(x):
            x = x + self.drop_path(self.attn(self.ln1(x), hw, table))
            return self.ffn(self.ln2(x), identity=x)

        if self.with_cp and self.training and x.requires_grad:
            return cp.checkpoint(_forward, x, use_reentrant=False)
        return _forward(x)


@MODELS.register_module()
class WindowedViT(BackboneContractMixin, BaseModule):
    """Plain ViT with windowed and global attention; stride-16 NCHW maps.

    The detector backbone of Li et al. and ViTDet, without the pyramid: it
    returns the outputs of the blocks in ``out_indices`` as ``(N, C, H/16,
    W/16)`` maps. Put a pyramid neck after it (``ViTMultiScaleAdaptor`` for
    Li et al.'s four taps, ``ViTSimplePyramid`` for ViTDet's pyramid from
    the last block), then an FPN.

    The ViT follows mmpretrain's ``VisionTransformer`` key names
    (``patch_embed.projection``, ``pos_embed``, ``layers.i.ln1``,
    ``layers.i.attn.qkv``, ``layers.i.ffn.layers.0.0``, ...). With
    ``init_cfg=dict(type='CheckedPretrained', checkpoint=...,
    prefix='backbone.')`` it loads, exactly, the checkpoints of the five
    initializations Li et al. compare (see
    :mod:`um_mae.models.converters`): MAE, UM-MAE (official or ours), timm /
    DeiT (distilled too), MoCo v3 and BEiT releases, and mmpretrain's.
    The class token and the final norm of a checkpoint are not used (dense
    features need neither); unless the checkpoint has them (BEiT), the
    relative position bias tables are new.

    * ``pos_embed`` keeps the ``(1, 1 + h*w, C)`` shape of the pre-training
      table (the class-token slot is loaded and unused); it is resized to
      the grid of every input (e.g. from 224 to 512 px). A checkpoint table
      of another size is resized to the pre-training grid when loaded. BEiT
      has no absolute position embedding: ``use_abs_pos_embed=False`` builds
      none.
    * Blocks in ``global_indices`` (by default ``d/4-1, 2d/4-1, 3d/4-1,
      d-1``) attend globally, the others within non-overlapping
      ``window_size`` windows (the map is padded to a multiple of the
      window, padded keys are masked).
    * Every block has a relative position bias table for its window (global
      blocks: for the pre-training grid, resized to the input grid), zero
      unless loaded; a checkpoint's tables (BEiT's, shared or per block) are
      resized to each block's table when loaded (bicubic, corners aligned).
      ``rel_pos_bias='shared'`` (Li et al. section 3) has two tables
      instead, ``rel_pos_window.*`` shared by the windowed blocks and
      ``rel_pos_global.*`` by the global ones. Per-block tables of a
      checkpoint load into them only when every block of the group holds
      the same table (BEiT's shared one); different tables (a fine-tuned
      BEiT) are refused with the blocks that differ, never averaged
      (:func:`um_mae.models.converters.share_block_tables`).
    * ``transferred_pos`` says which position information a checkpoint
      must provide: ``'abs'`` (``pos_embed``) and / or ``'rel'`` (the bias
      tables). The parts not listed keep this class's initialization
      (truncated normal ``pos_embed``, zero tables) when the checkpoint
      lacks them. Li et al.: BEiT ``('rel',)`` (transferred biases, random
      absolute table), the other initializations ``('abs',)``.
    * ``layer_scale_init_value > 0`` adds BEiT's layer scale to both
      branches of every block (``attn.gamma1``, ``ffn.gamma2``); BEiT's q /
      v biases load into ``qkv.bias`` with a zero k bias, which is exact.
    * ``frozen=True`` fixes every parameter (``requires_grad=False``, so no
      gradient, no optimizer update and no weight decay) and keeps the
      module in eval mode (no dropout or drop path; norms with running
      statistics would not update them).

    Until this split the backbone was ``ViTDetBackbone`` with the four
    resolution modules fused in (``scale_modules.*``). The trunk keys are
    unchanged; the resolution modules are ``ViTMultiScaleAdaptor``'s now,
    and :func:`um_mae.models.converters.split_fused_vit_adaptor` renames the
    keys of a detector or segmentor checkpoint saved before the split.

    Args:
        arch (str | dict): ``'base'``/``'b'``, ``'large'``/``'l'``,
            ``'demo'`` (a tiny ViT for tests and CPU demos) or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and
            ``feedforward_channels``. Defaults to ``'base'``.
        img_size (int | tuple): Pre-training input size; sets the grid of
            ``pos_embed``. Defaults to 224.
        patch_size (int): Token size in pixels. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        window_size (int, optional): Window side in tokens. None means the
            pre-training grid (14 for 224 px, 16 px tokens). Defaults to
            None.
        global_indices (Sequence[int], optional): Blocks with global
            attention (negative: from the end); None means ``d/4-1, 2d/4-1,
            3d/4-1, d-1``. Defaults to None.
        out_indices (Sequence[int], optional): Blocks whose outputs are
            returned, in this order (negative: from the end, ``(-1,)`` is
            the last block). None means ``d/4-1, 2d/4-1, 3d/4-1, d-1``, the
            four taps of Li et al. Defaults to None.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention dropout rate. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate, linearly increasing
            over the blocks. Defaults to 0.
        qkv_bias (bool): Bias in the qkv projections. Defaults to True.
        layer_scale_init_value (float): Initial layer scale (BEiT: 0.1 for
            ViT-B, 1e-5 for ViT-L; overwritten by a loaded checkpoint); 0
            means no layer scale. Defaults to 0.
        use_abs_pos_embed (bool): Add the absolute position embedding
            ``pos_embed``. Defaults to True.
        rel_pos_bias (str): ``'per_block'`` (a table in every block, as
            BEiT / MAE fine-tuning) or ``'shared'`` (one table for the
            windowed blocks and one for the global blocks, Li et al.).
            Defaults to ``'per_block'``.
        transferred_pos (Sequence[str]): Position parts a checkpoint loaded
            by ``CheckedPretrained`` must fill: ``'abs'``, ``'rel'``.
            Defaults to ``('abs',)``.
        frozen (bool): Fix all parameters and stay in eval mode (a
            frozen-backbone training stage). Defaults to False.
        norm_cfg (dict): Norm of the blocks. Defaults to
            ``dict(type='LN', eps=1e-6)``.
        act_cfg (dict): Activation of the MLPs. Defaults to
            ``dict(type='GELU')``.
        interpolate_mode (str): Mode for resizing ``pos_embed``. Defaults
            to ``'bicubic'``.
        with_cp (bool): Activation checkpointing in every block. Defaults
            to False.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """
    arch_zoo = {
        **dict.fromkeys(
            ['b', 'base'], {
                'embed_dims': 768,
                'num_layers': 12,
                'num_heads': 12,
                'feedforward_channels': 3072
            }),
        **dict.fromkeys(
            ['l', 'large'], {
                'embed_dims': 1024,
                'num_layers': 24,
                'num_heads': 16,
                'feedforward_channels': 4096
            }),
        'demo': {
            'embed_dims': 32,
            'num_layers': 8,
            'num_heads': 2,
            'feedforward_channels': 128
        },
    }
    num_extra_tokens = 1  # the class-token slot of pos_embed
    # parts no pre-trained ViT has (they keep this class's init), and the
    # parts of a checkpoint that the dense features do not use (see
    # um_mae.models.converters.load_pretrained): the class token, the final
    # norm and, in a detector checkpoint saved before the split, the
    # resolution modules (a neck now)
    pretrained_new_keys = (
        r'layers\.\d+\.attn\.relative_position_bias_table$', )
    pretrained_unused_keys = (r'cls_token$', r'ln1\.', r'scale_modules\.')
    # the patch embedding keeps PyTorch's default initialization
    construction_init_keys = (r'patch_embed\.', )
    _arch_keys = ('embed_dims', 'num_layers', 'num_heads',
                  'feedforward_channels')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 window_size: Optional[int] = None,
                 global_indices: Optional[Sequence[int]] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 layer_scale_init_value: float = 0.,
                 use_abs_pos_embed: bool = True,
                 rel_pos_bias: str = 'per_block',
                 transferred_pos: Sequence[str] = ('abs', ),
                 frozen: bool = False,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 act_cfg: dict = dict(type='GELU'),
                 interpolate_mode: str = 'bicubic',
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = parse_arch(arch, self.arch_zoo, self._arch_keys)
        self.embed_dims = arch['embed_dims']
        self.num_layers = depth = arch['num_layers']
        self.stage_depths = [depth]
        self.patch_size = patch_size
        self.interpolate_mode = interpolate_mode

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            input_size=img_size,
            embed_dims=self.embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size)
        self.patch_resolution = tuple(self.patch_embed.init_out_size)
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + self.num_extra_tokens,
                        self.embed_dims)) if use_abs_pos_embed else None
        self._register_load_state_dict_pre_hook(self._resize_ckpt_pos_embed)
        self._register_load_state_dict_pre_hook(self._share_ckpt_tables)
        self._register_load_state_dict_pre_hook(self._resize_ckpt_tables)
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        if window_size is None:
            if self.patch_resolution[0] != self.patch_resolution[1]:
                raise ValueError(
                    f'pre-training grid {self.patch_resolution} is not '
                    'square; set window_size explicitly')
            window_size = self.patch_resolution[0]
        self.window_size = window_size
        self.global_indices = self._block_indices(global_indices,
                                                  'global_indices')
        self.out_indices = self._block_indices(out_indices, 'out_indices')

        if rel_pos_bias not in ('per_block', 'shared'):
            raise ValueError(f"rel_pos_bias={rel_pos_bias!r}; use 'per_block' "
                             "or 'shared'")
        unknown = set(transferred_pos) - {'abs', 'rel'}
        if unknown:
            raise ValueError(f'transferred_pos={tuple(transferred_pos)} has '
                             f"{sorted(unknown)}; use 'abs' and / or 'rel'")
        self.rel_pos_bias = rel_pos_bias
        self.transferred_pos = tuple(transferred_pos)
        shared = rel_pos_bias == 'shared'
        # Li et al. section 3: one table per kind of block (a kind no block
        # has gets none)
        windowed = [i for i in range(depth) if i not in self.global_indices]
        self.rel_pos_window = SharedRelPosTable(
            arch['num_heads'],
            (window_size, ) * 2) if shared and windowed else None
        self.rel_pos_global = SharedRelPosTable(
            arch['num_heads'], self.patch_resolution) if shared else None
        new = []  # parts a checkpoint need not fill (see CheckedPretrained)
        if 'rel' not in self.transferred_pos:
            new.append(r'(layers\.\d+\.attn|rel_pos_window|rel_pos_global)'
                       r'\.relative_position_bias_table$')
        if 'abs' not in self.transferred_pos:
            new.append(r'pos_embed$')
        self.pretrained_new_keys = tuple(new)

        dpr = np.linspace(0, drop_path_rate, depth)
        self.layers = ModuleList()
        for i in range(depth):
            is_global = i in self.global_indices
            self.layers.append(
                WindowedViTBlock(
                    self.embed_dims,
                    arch['num_heads'],
                    arch['feedforward_channels'],
                    table_size=self.patch_resolution if is_global else
                    (window_size, window_size),
                    window_size=None if is_global else window_size,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rate=float(dpr[i]),
                    qkv_bias=qkv_bias,
                    layer_scale_init_value=layer_scale_init_value,
                    act_cfg=act_cfg,
                    norm_cfg=norm_cfg,
                    with_cp=with_cp,
                    own_table=not shared))

        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.train(False)

    def _block_indices(self, indices: Optional[Sequence[int]],
                       name: str) -> Tuple[int, ...]:
        """Block indices in ``0 .. d-1``; None: ``d/4-1, ..., d-1``."""
        depth = self.num_layers
        if indices is None:
            if depth % 4:
                raise ValueError(
                    f'num_layers={depth} is not a multiple of 4, so {name} '
                    'cannot default to the blocks d/4, 2d/4, 3d/4 and d; '
                    'set it explicitly')
            return tuple(depth // 4 * (i + 1) - 1 for i in range(4))
        return parse_indices(indices, depth, name, unit='blocks')

    def train(self, mode: bool = True) -> 'WindowedViT':
        """Set the training mode; a frozen backbone stays in eval mode."""
        return super().train(mode and not self.frozen)

    def random_init(self) -> None:
        """The random initialization (a checkpoint loads over it).

        ``pos_embed`` and the blocks' linear weights truncated normal with
        std 0.02 and zero biases; LayerNorms 1 / 0; relative position bias
        tables 0; layer scale ``layer_scale_init_value``; patch embedding
        PyTorch's default.
        """
        super().random_init()
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)
        for m in self.layers.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _shared_tables(self) -> Dict[str, Tuple[nn.Module, List[int]]]:
        """Shared table prefix -> (its module, the blocks using it)."""
        glob = list(self.global_indices)
        groups = {
            'rel_pos_window.':
            (self.rel_pos_window,
             [i for i in range(self.num_layers) if i not in glob]),
            'rel_pos_global.': (self.rel_pos_global, glob),
        }
        return {k: v for k, v in groups.items() if v[0] is not None}

    def adapt_pretrained_keys(
            self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Per-block bias tables of a checkpoint -> the shared tables.

        Called by ``CheckedPretrained`` before it checks the keys; the same
        rule runs on every ``load_state_dict``.
        """
        self._share_ckpt_tables(state_dict, '')
        return state_dict

    def _share_ckpt_tables(self, state_dict: Dict[str, Tensor], prefix: str,
                           *args, **kwargs) -> None:
        """Per-block checkpoint tables -> shared tables, exact or refused."""
        for name, (_, blocks) in self._shared_tables().items():
            share_block_tables(state_dict, blocks,
                               prefix + name + 'relative_position_bias_table',
                               prefix)

    def _resize_ckpt_tables(self, state_dict: Dict[str, Tensor], prefix: str,
                            *args, **kwargs) -> None:
        """Bring checkpoint bias tables of another grid to each block's."""
        tables = [(f'{prefix}{name}relative_position_bias_table', module)
                  for name, (module, _) in self._shared_tables().items()]
        if self.rel_pos_bias == 'per_block':
            tables = [(f'{prefix}layers.{i}.attn.relative_position_bias_table',
                       layer.attn) for i, layer in enumerate(self.layers)]
        for name, module in tables:
            own = module.relative_position_bias_table
            if name not in state_dict or state_dict[name].shape == own.shape:
                continue
            table = state_dict[name]
            side = math.isqrt(table.shape[0])
            if table.dim() != 2 or side * side != table.shape[0] or \
                    side % 2 == 0 or table.shape[1] != own.shape[1]:
                raise ValueError(
                    f'cannot map checkpoint {name} {tuple(table.shape)} to '
                    f'{tuple(own.shape)}; expected ((2s-1)^2, '
                    f'{own.shape[1]}) for a square grid of side s')
            src = ((side + 1) // 2, ) * 2
            state_dict[name] = resize_rel_pos_table(table, src,
                                                    module.table_size)

    def _resize_ckpt_pos_embed(self, state_dict: Dict[str, Tensor],
                               prefix: str, *args, **kwargs) -> None:
        """Bring a checkpoint ``pos_embed`` of another grid to ours."""
        if self.pos_embed is not None:
            resize_checkpoint_pos_embed(state_dict, prefix + 'pos_embed',
                                        self.pos_embed, self.patch_resolution,
                                        self.num_extra_tokens,
                                        self.interpolate_mode)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Stride-16 maps of full images.

        Args:
            x (Tensor): Images ``(N, C, H, W)``, ``H`` and ``W`` multiples
                of ``patch_size``.

        Returns:
            tuple[Tensor]: The outputs of the blocks in ``out_indices``, as
            ``(N, embed_dims, H / patch_size, W / patch_size)`` maps.
        """
        H, W = x.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(
                f'input size {H}x{W} is not a multiple of the patch size '
                f'{self.patch_size}; pad the batch, e.g. '
                f'data_preprocessor=dict(pad_size_divisor=32)')
        B = x.shape[0]
        x, hw = self.patch_embed(x)  # (B, h*w, C)
        if self.pos_embed is not None:
            pos_embed = resize_pos_embed(
                self.pos_embed,
                self.patch_resolution,
                hw,
                mode=self.interpolate_mode,
                num_extra_tokens=self.num_extra_tokens)
            x = x + pos_embed[:, self.num_extra_tokens:]
        x = self.drop_after_pos(x)

        maps = {}
        last = max(self.out_indices)
        tables = {}
        for module, blocks in self._shared_tables().values():
            tables.update(
                dict.fromkeys(blocks, module.relative_position_bias_table))
        for i, layer in enumerate(self.layers[:last + 1]):
            x = layer(x, hw, tables.get(i))
            if i in self.out_indices:
                maps[i] = x.transpose(1, 2).reshape(B, -1, *hw)
        return tuple(maps[i] for i in self.out_indices)
