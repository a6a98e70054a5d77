# Copyright (c) um-mae contributors. All rights reserved.
"""Swin Transformer backbone of UM-MAE.

Li et al., "Uniform Masking: Enabling MAE Pre-training for Pyramid-based
Vision Transformers with Locality", 2022 (arXiv:2205.10063).

The UM-MAE variant of Swin differs from the original Swin Transformer in
three ways, all reproduced here so that official checkpoints load:

* stage-to-stage merging is a LayerNorm followed by a 2x2 stride-2 conv;
* there is no absolute position embedding;
* the relative position bias is *continuous*: a small MLP maps the
  log-spaced offset ``sign(d) * log(1 + |d|)`` of every token pair to one
  bias per head. ``d`` is the offset of the two tokens on the real image
  grid (units of 4-px patches, halved at every merge). In the compact
  pre-training map the kept tokens are not adjacent, so their real
  coordinates are packed and shifted together with the features.

One class serves all tasks: ``forward(x)`` runs on the full image (any
size; classification, detection, segmentation) and
``forward(x, mask, secondary_mask)`` runs the compact UM-MAE encoder on the
visible tokens only.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import Tensor

from ..utils import (BackboneContractMixin, check_compact_masks,
                     check_mask_grid, check_mask_inputs, check_pyramid_modes,
                     parse_arch, parse_indices, replace_secondary_tokens,
                     token_to_patch_mask, uniform_pack)
from ..utils.weight_init import official_init_
from ..utils.windows import (CompactPositions, PairCoords, log_spaced,
                             pad_to_windows, shift_attention_mask,
                             window_layout, window_partition,
                             window_unpartition)

__all__ = ['UMSwinTransformer']

#: token coordinates given to the blocks: None in dense mode
_Coords = Optional[Union[CompactPositions, PairCoords, Tensor]]


class ContinuousWindowMSA(BaseModule):
    """Window multi-head self-attention with a continuous position bias.

    The bias of a (query, key) pair is ``mlp(sign(d) * log(1 + |d|))`` with
    ``d = coord(key) - coord(query)`` on the image grid, computed by two
    1x1 convs (``2 -> pos_mlp_dims -> num_heads``) with a ReLU between.

    Args:
        embed_dims (int): Channels of the tokens.
        num_heads (int): Number of attention heads.
        pos_mlp_dims (int): Hidden channels of the position-bias MLP.
            Defaults to 32.
        qkv_bias (bool): Add a bias to the qkv projection. Defaults to True.
        attn_drop (float): Dropout on the attention weights (training
            only). Defaults to 0.
        proj_drop (float): Dropout after the output projection.
            Defaults to 0.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 pos_mlp_dims: int = 32,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}; pick a divisor')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.rel_pos_mlp = nn.Sequential(
            nn.Conv2d(2, pos_mlp_dims, 1), nn.ReLU(inplace=True),
            nn.Conv2d(pos_mlp_dims, num_heads, 1))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def position_bias(self, coords: Tensor) -> Tensor:
        """Bias of every token pair of every window, the MLP run per pair.

        Args:
            coords (Tensor): ``(M, WW, 2)`` image-grid (h, w) coordinates of
                the tokens of M windows.

        Returns:
            Tensor: ``(M, num_heads, WW, WW)``, row = query, column = key.
        """
        offset = coords[:, None, :, :] - coords[:, :, None, :]  # (M,q,k,2)
        return self.rel_pos_mlp(log_spaced(offset).permute(0, 3, 1, 2))

    def lattice_bias(self, lattice: Tensor, index: Tensor) -> Tensor:
        """Bias of token pairs whose offsets lie on a lattice.

        The MLP runs once per lattice point; every pair reads its point.
        The inputs are the same as for :meth:`position_bias` (the lattice
        holds the offsets exactly), and so are the values.

        Args:
            lattice (Tensor): ``(2, Sh, Sw)`` log-spaced offsets
                (``sign(d) * log(1 + |d|)``) of the lattice points.
            index (Tensor): ``(M, q, k)`` int64 flat lattice point of each
                pair.

        Returns:
            Tensor: ``(M, num_heads, q, k)``.
        """
        table = self.rel_pos_mlp(lattice[None]).flatten(2)[0]  # (nH, S)
        M, q, k = index.shape
        # index_select's backward (index_add) is cheaper than indexing's
        bias = table.index_select(1, index.flatten()).view(-1, M, q, k)
        return bias.transpose(0, 1)

    def forward(self, x: Tensor, attn_bias: Tensor) -> Tensor:
        """Attend within windows.

        Args:
            x (Tensor): ``(N, nW, WW, C)`` window tokens.
            attn_bias (Tensor): Additive logits broadcastable to
                ``(N, nW, num_heads, WW, WW)``.

        Returns:
            Tensor: ``(N, nW, WW, C)``.
        """
        N, nW, WW, C = x.shape
        qkv = self.qkv(x).view(N * nW, WW, 3, self.num_heads,
                               C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N*nW, nH, WW, d)
        # 4-D inputs let SDPA pick a fused kernel; a bias shared by all
        # samples (dense mode) stays a stride-0 view where possible
        bias = attn_bias.to(q.dtype).expand(N, nW, self.num_heads, WW, WW)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.reshape(N * nW, self.num_heads, WW, WW),
            dropout_p=self.attn_drop if self.training else 0.)
        out = out.transpose(1, 2).reshape(N, nW, WW, C)
        return self.proj_drop(self.proj(out))


class UMSwinBlock(BaseModule):
    """(Shifted-)window transformer block with continuous position bias.

    Args:
        embed_dims (int): Channels of the tokens.
        num_heads (int): Number of attention heads.
        shifted (bool): Shift the windows by half a window (odd blocks).
        pos_mlp_dims (int): Hidden channels of the position-bias MLP.
            Defaults to 32.
        mlp_ratio (float): FFN hidden / embed channels. Defaults to 4.
        qkv_bias (bool): Add a bias to the qkv projection. Defaults to True.
        drop_rate (float): Dropout after attention and FFN projections.
            Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth of both residual branches.
            Defaults to 0.
        norm_cfg (dict): Config of ``norm1``/``norm2``. The official model
            uses the LayerNorm default eps here. Defaults to
            ``dict(type='LN', eps=1e-5)``.
        with_cp (bool): Use activation checkpointing. Defaults to False.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 shifted: bool,
                 pos_mlp_dims: int = 32,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.shifted = shifted
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = ContinuousWindowMSA(
            embed_dims,
            num_heads,
            pos_mlp_dims=pos_mlp_dims,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate)
        self.drop_path = build_dropout(
            dict(type='DropPath', drop_prob=drop_path_rate))
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * mlp_ratio),
            num_fcs=2,
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            act_cfg=dict(type='GELU'),
            add_identity=True)

    def window_attention(self, x: Tensor, coords: _Coords,
                         window_size: int) -> Tensor:
        """(Shifted-)window attention over a channels-last map.

        Args:
            x (Tensor): ``(N, H, W, C)`` normalised tokens.
            coords (CompactPositions | Tensor, optional): Image-grid
                coordinates of the tokens (compact mode): a
                :class:`CompactPositions` (the MLP runs on its lattice) or
                an ``(N, H, W, 2)`` tensor (the MLP runs per pair). ``None``
                for a full, regular map, where the coordinate offsets inside
                a window are the in-window offsets.
            window_size (int): Configured window side.

        Returns:
            Tensor: ``(N, H, W, C)``.
        """
        N, H, W, _ = x.shape
        layout = window_layout((H, W), window_size, self.shifted)
        (wh, ww), (sh, sw) = layout
        if coords is not None and (H % wh or W % ww):
            raise ValueError(
                f'compact map {H}x{W} is not a multiple of the window '
                f'{wh}x{ww}; choose an input size accepted by '
                'UMSwinTransformer.check_compact_size')
        x = pad_to_windows(x, (wh, ww))
        Hp, Wp = x.shape[1:3]
        shift = (sh, sw) != (0, 0)
        if shift:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        windows = window_partition(x, (wh, ww))  # (N, nW, WW, C)

        if coords is None:
            # Identical for every window and sample; pairs that differ from
            # the true offset are exactly the ones masked below.
            grid = torch.stack(
                torch.meshgrid(
                    torch.arange(wh, device=x.device, dtype=x.dtype),
                    torch.arange(ww, device=x.device, dtype=x.dtype),
                    indexing='ij'),
                dim=-1).view(1, wh * ww, 2)
            bias = self.attn.position_bias(grid)[None]  # (1, 1, nH, WW, WW)
        else:
            if isinstance(coords, Tensor):
                coords = PairCoords(coords)
            bias = coords.bias(self.attn, layout)  # (N * nW, nH, WW, WW)
            bias = bias.view(N, -1, *bias.shape[1:])  # (N, nW, nH, WW, WW)
        if shift:
            mask = shift_attention_mask((Hp, Wp), layout, x.device, x.dtype)
            bias = bias + mask[:, None]

        windows = self.attn(windows, bias)
        x = window_unpartition(windows, (wh, ww), Hp, Wp)
        if shift:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        return x[:, :H, :W].contiguous()

    def forward(self, x: Tensor, coords: _Coords,
                window_size: int) -> Tensor:
        """Run the block on a channels-last map ``(N, H, W, C)``."""

        def _inner_forward(x):
            x = x + self.drop_path(
                self.window_attention(self.norm1(x), coords, window_size))
            return self.ffn(self.norm2(x), identity=x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


class UMSwinPatchMerging(BaseModule):
    """LayerNorm then a 2x2 stride-2 conv (UM-MAE Swin stage transition).

    Args:
        in_channels (int): Channels of the input map.
        out_channels (int): Channels of the output map.
        norm_cfg (dict): Config of the norm before the conv. Defaults to
            ``dict(type='LN', eps=1e-6)``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.proj = nn.Conv2d(in_channels, out_channels, 2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """(N, H, W, C) -> (N, ceil(H/2), ceil(W/2), C'); odd sides padded
        at the bottom/right."""
        x = self.norm(x).permute(0, 3, 1, 2)
        H, W = x.shape[-2:]
        if H % 2 or W % 2:
            x = F.pad(x, (0, W % 2, 0, H % 2))
        return self.proj(x).permute(0, 2, 3, 1)


class UMSwinStage(BaseModule):
    """Optional patch merging followed by a sequence of Swin blocks.

    Args:
        blocks (list[UMSwinBlock]): The blocks of the stage.
        downsample (UMSwinPatchMerging, optional): Merging applied first
            (all stages but the first). Defaults to None.
    """

    def __init__(self,
                 blocks: List[UMSwinBlock],
                 downsample: Optional[UMSwinPatchMerging] = None) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = ModuleList(blocks)

    def forward(self, x: Tensor, coords: _Coords,
                window_size: int) -> Tuple[Tensor, _Coords]:
        """Run the stage on ``(N, H, W, C)``; returns the map and coords
        (``None`` or positions with ``merged()`` and ``bias()``, e.g.
        :class:`CompactPositions`)."""
        if self.downsample is not None:
            x = self.downsample(x)
            if coords is not None:
                coords = coords.merged()
        for block in self.blocks:
            x = block(x, coords, window_size)
        return x, coords


@MODELS.register_module()
class UMSwinTransformer(BackboneContractMixin, BaseBackbone):
    """Swin Transformer of UM-MAE for pre-training and downstream tasks.

    Three modes share all weights:

    * ``forward(x)`` (dense): any input size; the image is padded to a
      multiple of the patch size, every block pads its map to a multiple of
      the window (``window_size``) and crops back, odd maps are padded
      before merging (padded tokens take part in the window attention, as
      in the official detection backbone). Returns the NCHW maps of
      ``out_indices`` at strides 4, 8, 16 and 32, or
      ``(fc_norm(mean of last-stage tokens),)`` with
      ``out_type='avg_featmap'``.
    * ``forward(x, mask, secondary_mask)`` (compact UM-MAE pre-training):
      ``mask`` ``(N, h, w)`` is a uniform mask (True = dropped) on the grid
      of mask tokens (16 px for 256-px inputs). The kept token of every 2x2
      block is packed into a map of half the size, together with its real
      image-grid coordinates, and the blocks use ``compact_window_size``
      windows. Tokens of ``secondary_mask & ~mask`` are replaced by
      ``patch_embed.norm(vis_mask_token)``. Returns the compact NCHW maps
      of ``out_indices`` (no final norm: that is the decoder's ``in_norm``).
    * ``forward(x, mask)`` with ``mask_mode='mask_token'`` (SimMIM): tokens
      of the full-size input under ``mask`` (any pattern, any grid that
      tiles the patch grid) are replaced by ``mask_token``, then the dense
      path runs.

    Args:
        arch (str | dict): ``'tiny'`` or ``'large'`` (official UM-MAE
            settings), ``'demo'`` (a tiny CPU model), or a dict with keys
            ``embed_dims``, ``depths``, ``num_heads`` and ``pos_mlp_dims``.
            Defaults to ``'tiny'``.
        in_channels (int): Image channels. Defaults to 3.
        patch_size (int): Side of the patch embedding. Defaults to 4.
        window_size (int): Window side in dense mode. Defaults to 16.
        compact_window_size (int, optional): Window side on the compact
            pre-training map; ``None`` means ``window_size // 2``, which
            covers the same image area. Defaults to None.
        mlp_ratio (float): FFN hidden / embed channels. Defaults to 4.
        qkv_bias (bool): Add a bias to the qkv projections. Defaults to True.
        drop_rate (float): Dropout after projections. Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth, linearly increasing over
            the blocks up to this value. Defaults to 0.
        out_indices (int | Sequence[int]): Stages whose maps are returned.
            Defaults to -1 (the last one).
        out_type (str): ``'featmap'`` (NCHW stage maps) or ``'avg_featmap'``
            (``fc_norm`` of the average last-stage token, for
            ``LinearClsHead``). Defaults to ``'featmap'``.
        mask_mode (str): What a masked forward does: ``'compact'`` (UM-MAE)
            or ``'mask_token'`` (SimMIM; builds ``mask_token``).
            Defaults to ``'compact'``.
        with_vis_mask_token (bool): Create ``vis_mask_token`` for secondary
            masking in compact mode. Defaults to False.
        with_cp (bool): Use activation checkpointing. Defaults to False.
        norm_cfg (dict): Norm of the patch embedding, patch merging and
            ``fc_norm``. Defaults to ``dict(type='LN', eps=1e-6)``.
        block_norm_cfg (dict): ``norm1``/``norm2`` of the blocks; the
            official model uses eps 1e-5 there. Defaults to
            ``dict(type='LN', eps=1e-5)``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Without a ``Pretrained`` config the official initialization is
            used. Defaults to None.
    """
    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'], {
                'embed_dims': 96,
                'depths': [2, 2, 6, 2],
                'num_heads': [3, 6, 12, 24],
                'pos_mlp_dims': 32
            }),
        **dict.fromkeys(
            ['l', 'large'], {
                'embed_dims': 192,
                'depths': [2, 2, 18, 2],
                'num_heads': [6, 12, 24, 48],
                'pos_mlp_dims': 64
            }),
        # a few-MB model for CPU demos and tests
        'demo': {
            'embed_dims': 16,
            'depths': [2, 2, 2, 2],
            'num_heads': [1, 2, 4, 8],
            'pos_mlp_dims': 16
        },
    }
    _arch_keys = ('embed_dims', 'depths', 'num_heads', 'pos_mlp_dims')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 patch_size: int = 4,
                 window_size: int = 16,
                 compact_window_size: Optional[int] = None,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'featmap',
                 mask_mode: str = 'compact',
                 with_vis_mask_token: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 block_norm_cfg: dict = dict(type='LN', eps=1e-5),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = parse_arch(arch, self.arch_zoo, self._arch_keys)
        embed_dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        num_heads = self.arch_settings['num_heads']
        self.embed_dims = embed_dims
        self.depths = self.stage_depths = list(depths)
        self.num_stages = len(depths)
        self.num_features = [embed_dims * 2**i for i in range(self.num_stages)]
        self.patch_size = patch_size
        self.window_size = window_size
        self.compact_window_size = (
            compact_window_size
            if compact_window_size is not None else window_size // 2)
        if self.compact_window_size < 1:
            raise ValueError(f'compact_window_size '
                             f'{self.compact_window_size} must be >= 1; '
                             'set it explicitly or raise window_size')

        self.out_indices = parse_indices(out_indices, self.num_stages)
        check_pyramid_modes(out_type, self.out_indices, self.num_stages,
                            mask_mode)
        self.out_type = out_type
        self.mask_mode = mask_mode

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            padding='corner',
            norm_cfg=norm_cfg)
        if with_vis_mask_token:
            self.vis_mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
            trunc_normal_(self.vis_mask_token, std=.02)
        else:
            self.vis_mask_token = None
        if mask_mode == 'mask_token':
            self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
            trunc_normal_(self.mask_token, std=.02)
        else:
            self.mask_token = None

        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = ModuleList()
        for i, depth in enumerate(depths):
            blocks = [
                UMSwinBlock(
                    self.num_features[i],
                    num_heads[i],
                    shifted=j % 2 == 1,
                    pos_mlp_dims=self.arch_settings['pos_mlp_dims'],
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rate=dpr[sum(depths[:i]) + j],
                    norm_cfg=block_norm_cfg,
                    with_cp=with_cp) for j in range(depth)
            ]
            downsample = UMSwinPatchMerging(
                self.num_features[i - 1],
                self.num_features[i],
                norm_cfg=norm_cfg) if i > 0 else None
            self.stages.append(UMSwinStage(blocks, downsample))

        if out_type == 'avg_featmap':
            self.fc_norm = build_norm_layer(norm_cfg, self.num_features[-1])[1]
        else:
            self.fc_norm = None

    # ------------------------------------------------------------------
    # construction helpers
    def random_init(self) -> None:
        """The official model's initialization (:func:`official_init_`),
        a Xavier patch embedding and N(0, 0.02) mask tokens."""
        super().random_init()
        official_init_(self)
        # the patch embedding is initialised like a linear layer
        w = self.patch_embed.projection.weight
        nn.init.xavier_uniform_(w.data.view(w.shape[0], -1))
        for token in (self.vis_mask_token, self.mask_token):
            if token is not None:
                nn.init.normal_(token, std=.02)

    # ------------------------------------------------------------------
    # layouts and size checks
    def _stage_sizes(self, input_size: Tuple[int, int],
                     compact: bool) -> List[Tuple[int, int]]:
        h = math.ceil(input_size[0] / self.patch_size)
        w = math.ceil(input_size[1] / self.patch_size)
        if compact:
            h, w = h // 2, w // 2
        sizes = [(h, w)]
        for _ in range(self.num_stages - 1):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
            sizes.append((h, w))
        return sizes

    def block_layouts(self,
                      input_size: Union[int, Tuple[int, int]],
                      compact: bool = False) -> List[Dict]:
        """Per-block map size, window and shift for an input size.

        Args:
            input_size (int | tuple[int, int]): Image height and width.
            compact (bool): Layout of the compact pre-training encoder
                (``compact_window_size`` on a map of half the size) instead
                of the dense one. Defaults to False.

        Returns:
            list[dict]: One dict per block (stage order) with keys
            ``stage``, ``dim``, ``num_heads``, ``input_resolution``,
            ``window_size``, ``shift_size`` (tuples (h, w)) and
            ``downsample``.
        """
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        if compact:
            self.check_compact_size(input_size)
        window = self.compact_window_size if compact else self.window_size
        rows = []
        for i, size in enumerate(self._stage_sizes(input_size, compact)):
            for j, block in enumerate(self.stages[i].blocks):
                win, shift = window_layout(size, window, block.shifted)
                rows.append(
                    dict(
                        stage=i,
                        dim=self.num_features[i],
                        num_heads=block.attn.num_heads,
                        input_resolution=size,
                        window_size=win,
                        shift_size=shift,
                        downsample=i > 0 and j == 0))
        return rows

    def _compact_size_ok(self, side: int) -> bool:
        patches, rest = divmod(side, self.patch_size)
        if rest or patches % 2:
            return False
        ws = self.compact_window_size
        s = patches // 2  # side of the compact stage-1 map
        for stage in range(self.num_stages):
            if stage > 0:
                if s % 2:
                    return False
                s //= 2
            if s < 1 or (s > ws and s % ws):
                return False
        return True

    def check_compact_size(self, input_size: Tuple[int, int]) -> None:
        """Raise a ``ValueError`` if compact pre-training cannot use a size.

        In compact mode no padding is allowed (it would mix padding with the
        packed tokens), so every stage map of the compact encoder must halve
        exactly and be either no larger than ``compact_window_size`` or a
        multiple of it.

        Args:
            input_size (tuple[int, int]): Image height and width.
        """
        bad = [s for s in input_size if not self._compact_size_ok(s)]
        if not bad:
            return
        side = bad[0]
        maps = [
            side / self.patch_size / 2**(i + 1) for i in range(self.num_stages)
        ]
        maps = ', '.join(f'{m:g}' for m in maps)
        valid = [
            s for s in range(self.patch_size, 4 * max(side, 256) +
                             1, self.patch_size) if self._compact_size_ok(s)
        ]
        near = sorted(sorted(valid, key=lambda s: (abs(s - side), s))[:4])
        raise ValueError(
            f'input size {tuple(input_size)} cannot be pre-trained in compact '
            f'mode: side {side} gives compact stage maps of {maps} patches, '
            'but each must be a whole number, halve exactly, and be <= the '
            f'compact window ({self.compact_window_size}) or a multiple of '
            f'it; use a side such as {near}')

    # ------------------------------------------------------------------
    # forward
    def _embed(self, x: Tensor) -> Tensor:
        """Image -> channels-last normalised patch tokens (N, H, W, C)."""
        x, (H, W) = self.patch_embed(x)
        return x.view(x.shape[0], H, W, -1)

    def _run_stages(self, x: Tensor, coords: _Coords,
                    window_size: int) -> Tuple[Tensor, ...]:
        if isinstance(coords, Tensor):
            coords = PairCoords(coords)
        outs = {}
        for i, stage in enumerate(self.stages):
            x, coords = stage(x, coords, window_size)
            if i in self.out_indices:
                outs[i] = x
        return tuple(outs[i] for i in self.out_indices)

    def compact_embed(
            self,
            x: Tensor,
            mask: Tensor,
            secondary_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Pack the visible tokens and their coordinates (compact mode).

        Args:
            x (Tensor): Images ``(N, C, H, W)``.
            mask (Tensor): Uniform mask ``(N, h, w)``, True = dropped.
            secondary_mask (Tensor, optional): ``(N, h, w)``, superset of
                ``mask``; kept tokens that it covers become
                ``vis_mask_token``. Defaults to None.

        Returns:
            tuple[Tensor, Tensor]: Compact tokens ``(N, H/8, W/8, C)`` and
            their image-grid (h, w) coordinates ``(N, H/8, W/8, 2)`` in
            units of patches.
        """
        N = x.shape[0]
        Hp, Wp = (s // self.patch_size for s in x.shape[-2:])
        check_mask_inputs(mask, secondary_mask, self.vis_mask_token)
        mask, secondary_mask = check_compact_masks(mask, secondary_mask, N,
                                                   (Hp, Wp))
        self.check_compact_size(tuple(x.shape[-2:]))
        # a patch never crosses a token: embedding the packed pixels of the
        # kept tokens equals packing the embedded patches, at 1/4 the cost
        packed = self._embed(uniform_pack(x, mask))  # (N, Hc, Wc, C)
        grid = torch.stack(
            torch.meshgrid(
                torch.arange(Hp, device=x.device, dtype=packed.dtype),
                torch.arange(Wp, device=x.device, dtype=packed.dtype),
                indexing='ij'))  # (2, Hp, Wp)
        coords = uniform_pack(grid.expand(N, -1, -1, -1), mask)
        coords = coords.permute(0, 2, 3, 1)  # (N, Hc, Wc, 2)

        if secondary_mask is not None:
            vis_token = self.patch_embed.norm(self.vis_mask_token)
            packed = replace_secondary_tokens(packed, vis_token, mask,
                                              secondary_mask, (Hp, Wp))
        return packed, coords

    def _insert_mask_token(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Replace the tokens under ``mask`` (N, h, w) by ``mask_token``."""
        N, H, W, C = tokens.shape
        check_mask_grid(mask, N, (H, W))
        mask = token_to_patch_mask(mask, (H, W))
        return torch.where(mask[..., None], self.mask_token.view(1, 1, 1, C),
                           tokens)

    def forward(self,
                x: Tensor,
                mask: Optional[Tensor] = None,
                secondary_mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Dense forward (``mask=None``) or compact UM-MAE forward.

        Args:
            x (Tensor): Images ``(N, C, H, W)``.
            mask (Tensor, optional): Uniform mask ``(N, h, w)``, True =
                dropped. Defaults to None.
            secondary_mask (Tensor, optional): ``(N, h, w)`` superset of
                ``mask`` marking kept tokens to replace by
                ``vis_mask_token``. Defaults to None.

        Returns:
            tuple[Tensor]: NCHW maps of ``out_indices`` or, for
            ``out_type='avg_featmap'`` in dense mode, ``(N, C)`` features.
        """
        check_mask_inputs(mask, secondary_mask, self.vis_mask_token,
                          self.mask_mode)
        if mask is not None and self.mask_mode == 'compact':
            tokens, coords = self.compact_embed(x, mask, secondary_mask)
            grid = tuple(s // self.patch_size for s in x.shape[-2:])
            outs = self._run_stages(tokens, CompactPositions(coords, grid),
                                    self.compact_window_size)
            return tuple(o.permute(0, 3, 1, 2).contiguous() for o in outs)

        tokens = self._embed(x)  # (N, H, W, C)
        if mask is not None:  # SimMIM: mask tokens at full resolution
            tokens = self._insert_mask_token(tokens, mask.bool())
        outs = self._run_stages(tokens, None, self.window_size)
        if self.out_type == 'avg_featmap':
            return (self.fc_norm(outs[-1].mean(dim=(1, 2))), )
        return tuple(o.permute(0, 3, 1, 2).contiguous() for o in outs)
