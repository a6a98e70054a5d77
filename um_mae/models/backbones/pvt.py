# Copyright (c) um-mae contributors. All rights reserved.
"""Pyramid Vision Transformer as used by UM-MAE.

UM-MAE (Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022) pre-trains a PVT
variant whose spatial reduction is an average pooling followed by a 1x1
conv, and whose stages start with a 2x2 stride-2 patch merging. One class
serves pre-training (compact UM-MAE mode and SimMIM mask-token mode),
classification, detection and segmentation.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import Tensor

from ..utils import (BackboneContractMixin, check_compact_masks,
                     check_mask_inputs, check_pyramid_modes, parse_arch,
                     parse_indices, replace_secondary_tokens,
                     resize_checkpoint_pos_embed, sincos_pos_embed_2d,
                     token_to_patch_mask, uniform_pack)
from ..utils.weight_init import official_init_

__all__ = ['UMPVT']


class PoolingSRAttention(BaseModule):
    """Multi-head attention whose keys and values come from a pooled map.

    Keys and values are computed from ``LN(conv1x1(avg_pool(x, sr)))``; the
    pooling, conv and norm are applied even when ``sr == 1``, as in the
    official model.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        qkv_bias (bool): Bias in the q and kv projections. Defaults to True.
        attn_drop (float): Attention dropout. Defaults to 0.
        proj_drop (float): Output dropout. Defaults to 0.
        norm_cfg (dict): Norm of the reduced keys/values.
            Defaults to ``dict(type='LN', eps=1e-5)``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}; change the arch')
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.sr = nn.Conv2d(embed_dims, embed_dims, kernel_size=1)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                sr_ratio: int) -> Tensor:
        """Attend from every token of ``x`` (B, H*W, C) to the pooled map."""
        B, N, C = x.shape
        d = C // self.num_heads
        q = self.q(x).reshape(B, N, self.num_heads, d).transpose(1, 2)
        # channels-last all the way: an NCHW view of the tokens pools
        # without a copy, and the 1x1 conv is the same linear map
        kv = x.view(B, *hw_shape, C).permute(0, 3, 1, 2)
        kv = F.avg_pool2d(kv, sr_ratio).permute(0, 2, 3, 1).reshape(B, -1, C)
        kv = F.linear(kv, self.sr.weight.view(C, C), self.sr.bias)
        kv = self.norm(kv)  # (B, M, C), M = H/sr * W/sr
        k, v = self.kv(kv).reshape(B, -1, 2, self.num_heads,
                                   d).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class PVTLayer(BaseModule):
    """Pre-norm transformer layer with pooling spatial-reduction attention.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP relative to
            ``embed_dims``.
        qkv_bias (bool): Bias in the q and kv projections. Defaults to True.
        drop_rate (float): Dropout after attention and MLP. Defaults to 0.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        norm_cfg (dict): Norms of the layer.
            Defaults to ``dict(type='LN', eps=1e-5)``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = PoolingSRAttention(
            embed_dims,
            num_heads,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            norm_cfg=norm_cfg)
        drop_path = dict(type='DropPath', drop_prob=drop_path_rate)
        self.drop_path = build_dropout(drop_path)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * mlp_ratio),
            ffn_drop=drop_rate,
            dropout_layer=drop_path,
            act_cfg=dict(type='GELU'))

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                sr_ratio: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape, sr_ratio))
        return self.ffn(self.norm2(x), identity=x)


class PVTStage(BaseModule):
    """Optional 2x2 stride-2 patch merging followed by ``PVTLayer`` s.

    Args:
        in_channels (int): Channels entering the stage.
        embed_dims (int): Channels of the stage.
        depth (int): Number of layers.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP ratio.
        sr_ratio (int): Spatial reduction on a full-size map; halved (at
            least 1) on the compact maps of UM-MAE pre-training.
        downsample (bool): Start with a 2x2 stride-2 conv merging.
        drop_path_rates (Sequence[float]): Stochastic depth per layer.
        layer_cfg (dict): Other ``PVTLayer`` arguments.
    """

    def __init__(self, in_channels: int, embed_dims: int, depth: int,
                 num_heads: int, mlp_ratio: float, sr_ratio: int,
                 downsample: bool, drop_path_rates: Sequence[float],
                 layer_cfg: dict) -> None:
        super().__init__()
        self.sr_ratio = sr_ratio
        self.downsample = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            kernel_size=2,
            stride=2,
            padding=0,
            norm_cfg=None) if downsample else None
        self.blocks = ModuleList([
            PVTLayer(
                embed_dims,
                num_heads,
                mlp_ratio,
                drop_path_rate=drop_path_rates[i],
                **layer_cfg) for i in range(depth)
        ])

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                compact: bool) -> Tuple[Tensor, Tuple[int, int]]:
        if self.downsample is not None:
            # an NCHW view of the tokens (channels-last strides): the conv
            # keeps that layout, so its flattened output needs no copy
            x = x.view(x.shape[0], *hw_shape, -1).permute(0, 3, 1, 2)
            x, hw_shape = self.downsample(x)
        # the compact map has half the side, so keys/values are pooled half
        # as much to keep their grid size
        sr = max(self.sr_ratio // 2, 1) if compact else self.sr_ratio
        for block in self.blocks:
            x = block(x, hw_shape, sr)
        return x, hw_shape


@MODELS.register_module()
class UMPVT(BackboneContractMixin, BaseBackbone):
    """Pyramid Vision Transformer for UM-MAE.

    ``forward(x, mask=None, secondary_mask=None)``:

    * ``mask`` None: the full image; returns NCHW maps at strides 4, 8, 16
      and 32 for ``out_indices`` (``out_type='featmap'``) or
      ``(fc_norm(mean of last-stage tokens),)`` (``out_type='avg_featmap'``).
    * ``mask`` given, ``mask_mode='compact'`` (UM-MAE): ``mask`` is a
      uniform mask ``(N, h, w)`` on the 16-px token grid (True = dropped).
      The kept token of every 2x2 block is re-packed into a half-size map;
      tokens in ``secondary_mask`` but not in ``mask`` are replaced by
      ``vis_mask_token`` (they keep their position embedding). The spatial
      reduction ratios are halved. Returns the compact maps.
    * ``mask`` given, ``mask_mode='mask_token'`` (SimMIM): masked tokens of
      the full-size input are replaced by ``mask_token``; any mask pattern.

    The final pre-training norm is not part of the backbone (it is the
    decoder's ``in_norm``), so the stage maps are the raw block outputs.

    Args:
        arch (str | dict): ``'small'`` (PVT-S as in UM-MAE), ``'demo'`` (a
            tiny CPU model) or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``mlp_ratios`` and ``sr_ratios`` (lists of four).
            ``sr_ratios`` are those of a full-size input. Defaults to
            ``'small'``.
        img_size (int | Sequence[int]): Size the position table is built
            for. Other sizes are handled at run time. Defaults to 256.
        in_channels (int): Input channels. Defaults to 3.
        patch_size (int): Side of the first patch embedding. Defaults to 4.
        out_indices (int | Sequence[int]): Stages to output.
            Defaults to -1 (the last one).
        out_type (str): ``'featmap'`` or ``'avg_featmap'``.
            Defaults to ``'featmap'``.
        qkv_bias (bool): Bias in q and kv projections. Defaults to True.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention dropout rate. Defaults to 0.
        drop_path_rate (float): Stochastic depth, linearly increasing over
            all layers. Defaults to 0.
        norm_cfg (dict): Norms inside the layers. The official models use
            torch's default eps there (1e-5), which this default keeps so
            official checkpoints reproduce. Defaults to
            ``dict(type='LN', eps=1e-5)``.
        fc_norm_cfg (dict): Norm after global pooling
            (``out_type='avg_featmap'``). Defaults to
            ``dict(type='LN', eps=1e-6)``.
        learnable_pos_embed (bool): Learn the position embedding (fine-tuning
            and dense tasks) instead of keeping the fixed sin-cos table
            (pre-training). A learnable table is bicubic-resized to other
            input sizes, a fixed one is rebuilt. Defaults to False.
        mask_mode (str): How a masked forward works: ``'compact'`` (UM-MAE)
            or ``'mask_token'`` (SimMIM, builds ``mask_token``).
            Defaults to ``'compact'``.
        with_vis_mask_token (bool): Build ``vis_mask_token`` for the
            secondary mask of UM-MAE. Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """
    arch_zoo = {
        **dict.fromkeys(
            ['s', 'small'], {
                'embed_dims': [64, 128, 320, 512],
                'depths': [3, 4, 6, 3],
                'num_heads': [1, 2, 5, 8],
                'mlp_ratios': [8, 8, 4, 4],
                'sr_ratios': [8, 4, 2, 1]
            }),
        'demo': {
            'embed_dims': [16, 32, 64, 128],
            'depths': [1, 1, 2, 1],
            'num_heads': [1, 2, 4, 8],
            'mlp_ratios': [4, 4, 4, 4],
            'sr_ratios': [8, 4, 2, 1]
        },
    }
    _arch_keys = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios',
                  'sr_ratios')

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 img_size: Union[int, Sequence[int]] = 256,
                 in_channels: int = 3,
                 patch_size: int = 4,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'featmap',
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 fc_norm_cfg: dict = dict(type='LN', eps=1e-6),
                 learnable_pos_embed: bool = False,
                 mask_mode: str = 'compact',
                 with_vis_mask_token: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = parse_arch(arch, self.arch_zoo, self._arch_keys)
        dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        self.embed_dims = dims
        self.stage_depths = depths
        self.num_stages = len(dims)
        self.out_indices = parse_indices(out_indices, self.num_stages)
        check_pyramid_modes(out_type, self.out_indices, self.num_stages,
                            mask_mode)
        self.out_type = out_type
        self.mask_mode = mask_mode

        self.img_size = (img_size, img_size) if isinstance(
            img_size, int) else tuple(img_size)
        self.patch_size = patch_size
        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=dims[0],
            kernel_size=patch_size,
            stride=patch_size,
            padding=0,
            norm_cfg=None)
        self.patch_resolution = tuple(s // patch_size for s in self.img_size)
        self.pos_embed = nn.Parameter(
            sincos_pos_embed_2d(self.patch_resolution, dims[0]),
            requires_grad=learnable_pos_embed)
        self.learnable_pos_embed = learnable_pos_embed
        self._register_load_state_dict_pre_hook(self._resize_pos_embed_hook)

        self.vis_mask_token = nn.Parameter(torch.zeros(
            1, 1, dims[0])) if with_vis_mask_token else None
        self.mask_token = nn.Parameter(torch.zeros(
            1, 1, dims[0])) if mask_mode == 'mask_token' else None

        dpr = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        layer_cfg = dict(
            qkv_bias=qkv_bias,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            norm_cfg=norm_cfg)
        self.stages = ModuleList()
        for i in range(self.num_stages):
            start = sum(depths[:i])
            self.stages.append(
                PVTStage(
                    in_channels=dims[i - 1] if i else dims[0],
                    embed_dims=dims[i],
                    depth=depths[i],
                    num_heads=self.arch_settings['num_heads'][i],
                    mlp_ratio=self.arch_settings['mlp_ratios'][i],
                    sr_ratio=self.arch_settings['sr_ratios'][i],
                    downsample=i > 0,
                    drop_path_rates=dpr[start:start + depths[i]],
                    layer_cfg=layer_cfg))
        self.fc_norm = build_norm_layer(
            fc_norm_cfg, dims[-1])[1] if out_type == 'avg_featmap' else None

    def random_init(self) -> None:
        """The official model's initialization (:func:`official_init_`),
        a Xavier patch embedding and N(0, 0.02) mask tokens."""
        super().random_init()
        official_init_(self)
        # the patch embedding is initialized like a linear layer
        w = self.patch_embed.projection.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for token in (self.vis_mask_token, self.mask_token):
            if token is not None:
                nn.init.normal_(token, std=.02)

    def _resize_pos_embed_hook(self, state_dict, prefix, *args, **kwargs):
        """Resize a checkpoint's position table to this model's grid."""
        resize_checkpoint_pos_embed(state_dict, prefix + 'pos_embed',
                                    self.pos_embed, self.patch_resolution, 0,
                                    'bicubic')

    def _pos_embed(self, hw_shape: Tuple[int, int]) -> Tensor:
        """Position table (1, H*W, C0) for a patch grid of ``hw_shape``."""
        if tuple(hw_shape) == self.patch_resolution:
            return self.pos_embed
        if self.learnable_pos_embed:
            return resize_pos_embed(
                self.pos_embed,
                self.patch_resolution,
                hw_shape,
                mode='bicubic',
                num_extra_tokens=0)
        return sincos_pos_embed_2d(hw_shape,
                                   self.embed_dims[0]).to(self.pos_embed)

    def _compact(
            self, x: Tensor, pos: Tensor, hw_shape: Tuple[int, int],
            mask: Tensor, secondary_mask: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[int, int]]:
        """Finish the compact (UM-MAE) input from packed patch tokens.

        Args:
            x (Tensor): Embedded patches of the packed image
                ``(N, H*W/4, C)``, ``hw_shape = (H, W)`` being the full
                patch grid.
            pos (Tensor): Position table of the full grid ``(1, H*W, C)``;
                its kept entries are packed and added.
            hw_shape (tuple[int, int]): Full patch grid.
            mask (Tensor): Uniform mask ``(N, h, w)``, checked.
            secondary_mask (Tensor, optional): Bool superset of ``mask``
                (checked); the kept tokens it covers become
                ``vis_mask_token``.

        Returns:
            tuple: Tokens ``(N, H*W/4, C)`` and the compact grid.
        """
        N, _, C = x.shape
        H, W = hw_shape
        if secondary_mask is not None:
            x = replace_secondary_tokens(x, self.vis_mask_token, mask,
                                         secondary_mask, hw_shape)
        # the position of a kept patch (also secondary-masked ones): its row
        # of the full-grid table, found by packing the raster ids
        ids = torch.arange(H * W, device=x.device).view(1, 1, H, W)
        ids = uniform_pack(ids.expand(N, -1, -1, -1), mask).flatten()
        x = x + pos[0].index_select(0, ids).view(N, -1, C)
        return x, (H // 2, W // 2)  # (N, H*W/4, C)

    def forward(self,
                x: Tensor,
                mask: Optional[Tensor] = None,
                secondary_mask: Optional[Tensor] = None) -> Tuple[Tensor]:
        """Encode images, masked (pre-training) or not; see the class doc.

        Args:
            x (Tensor): Images ``(N, C, H, W)``; H and W multiples of 32.
            mask (Tensor, optional): Bool ``(N, h, w)`` on the 16-px token
                grid, True = dropped. Defaults to None.
            secondary_mask (Tensor, optional): Bool ``(N, h, w)``, superset
                of ``mask`` (compact mode only). Defaults to None.

        Returns:
            tuple[Tensor]: NCHW maps for ``out_indices``, or the pooled
            feature for ``out_type='avg_featmap'``.
        """
        H, W = x.shape[-2:]
        if H % 32 or W % 32:
            raise ValueError(
                f'input size {H}x{W} is not divisible by 32 (4 stages, '
                f'total stride 32); resize or pad to '
                f'{-(-H // 32) * 32}x{-(-W // 32) * 32}')
        check_mask_inputs(mask, secondary_mask, self.vis_mask_token,
                          self.mask_mode)
        compact = mask is not None and self.mask_mode == 'compact'
        if compact:
            # a 4-px patch never crosses a 16-px token: embedding the packed
            # pixels of the kept tokens equals packing the embedded patches,
            # at a quarter of the cost
            mask, secondary_mask = check_compact_masks(
                mask, secondary_mask, x.shape[0],
                (H // self.patch_size, W // self.patch_size))
            x, hw_shape = self.patch_embed(uniform_pack(x, mask))
            hw_shape = (2 * hw_shape[0], 2 * hw_shape[1])  # full grid
        else:
            x, hw_shape = self.patch_embed(x)  # (N, H/4*W/4, C0)
        pos = self._pos_embed(hw_shape).to(x.dtype)
        if mask is None:
            x = x + pos
        elif self.mask_mode == 'mask_token':
            weight = token_to_patch_mask(mask, hw_shape)
            weight = weight.flatten(1).unsqueeze(-1)
            weight = weight.to(x.dtype)
            x = x * (1. - weight) + self.mask_token.to(x.dtype) * weight
            x = x + pos
        else:
            x, hw_shape = self._compact(x, pos, hw_shape, mask, secondary_mask)
        # tokens in memory order (the patch embedding gives an NCHW map):
        # the norms and residuals of every block then need no copies
        x = x.contiguous()

        outs = {}
        for i, stage in enumerate(self.stages):
            x, hw_shape = stage(x, hw_shape, compact)
            if i in self.out_indices:
                if self.out_type == 'avg_featmap':
                    outs[i] = self.fc_norm(x.mean(dim=1))
                else:
                    outs[i] = x.transpose(1,
                                          2).reshape(x.shape[0], -1,
                                                     *hw_shape).contiguous()
        return tuple(outs[i] for i in self.out_indices)
