# Copyright (c) um-mae contributors. All rights reserved.
"""MAE decoder for pyramid encoders pre-trained with Uniform Masking.

Li et al., "Uniform Masking: Enabling MAE Pre-training for Pyramid-based
Vision Transformers with Locality", 2022. The stride-32 compact map of the
encoder is lifted back to one feature per kept 16-px token by a linear
layer and a 2x pixel shuffle, then decoded together with mask tokens as in
MAE.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.registry import MODELS
from torch import Tensor

from ..utils import (RandomThenCheckpointInit, sincos_pos_embed_2d,
                     visible_block_order)
from ..utils.weight_init import official_init_

__all__ = ['MAEPyramidDecoder']


@MODELS.register_module()
class MAEPyramidDecoder(RandomThenCheckpointInit, BaseModule):
    """Decoder of UM-MAE for pyramid backbones (PVT, Swin).

    ``forward(x, mask)`` takes the last compact stage map of the encoder
    ``(N, C, h/4, w/4)`` (stride 32) and the primary uniform mask
    ``(N, h, w)`` (True = dropped) and returns the prediction of every
    16-px token in raster order, ``(N, h*w, patch_size**2 * in_chans)``,
    so that the loss can select the dropped tokens with the mask.

    Steps: ``in_norm`` (the encoder's final norm) -> ``decoder_embed``
    (``C -> 4*D``) -> ``PixelShuffle(2)``, which yields one feature per kept
    token in block order -> sequence ``[visible, mask tokens]`` plus the fixed
    sin-cos decoder positions -> transformer layers -> ``decoder_norm`` ->
    ``decoder_pred``.

    Work that does not change the result is skipped: a mask row entering
    the first layer is the mask token plus a position, so that layer's norm
    and qkv projection of mask rows run once per grid position instead of
    once per image; and as the loss reads only the dropped tokens,
    ``forward(..., predict_visible=False)`` (what :class:`UMMAE` uses for
    training) runs the last layer's queries, MLP and prediction for the
    dropped tokens only (their keys and values still come from every
    token), leaving the rows of the visible tokens zero.

    Position pairing: by default each visible feature gets the position of
    its own token. The official code adds the positions of the visible
    tokens in raster order to features that are in block order, pairing
    most features with another token's position; ``official_pos_order=True``
    reproduces that, which official checkpoints were trained with.

    Args:
        in_channels (int): Channels of the encoder's last stage.
        img_size (int | Sequence[int]): Input size the position table is
            built for; other sizes get a freshly built table.
            Defaults to 256.
        patch_size (int): Side of a predicted token in pixels.
            Defaults to 16.
        in_chans (int): Image channels. Defaults to 3.
        embed_dims (int): Decoder width D. Defaults to 512.
        depth (int): Decoder layers. Defaults to 2.
        num_heads (int): Decoder attention heads. Defaults to 16.
        mlp_ratio (float): Decoder MLP ratio. Defaults to 4.
        norm_cfg (dict): Norms of the decoder and ``in_norm``.
            Defaults to ``dict(type='LN', eps=1e-6)``.
        official_pos_order (bool): Reproduce the official pairing of block-
            ordered features with raster-ordered positions.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config;
            a checkpoint loads over the random initialization
            (:class:`~um_mae.models.utils.RandomThenCheckpointInit`).
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 img_size: Union[int, Sequence[int]] = 256,
                 patch_size: int = 16,
                 in_chans: int = 3,
                 embed_dims: int = 512,
                 depth: int = 2,
                 num_heads: int = 16,
                 mlp_ratio: float = 4.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 official_pos_order: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        img_size = (img_size,
                    img_size) if isinstance(img_size, int) else img_size
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.embed_dims = embed_dims
        self.official_pos_order = official_pos_order

        self.in_norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.decoder_embed = nn.Linear(in_channels, 4 * embed_dims)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed_2d(self.grid, embed_dims), requires_grad=False)
        self.decoder_blocks = ModuleList([
            TransformerEncoderLayer(
                embed_dims,
                num_heads,
                int(mlp_ratio * embed_dims),
                qkv_bias=True,
                norm_cfg=norm_cfg) for _ in range(depth)
        ])
        self.decoder_norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.decoder_pred = nn.Linear(embed_dims, patch_size**2 * in_chans)

    def random_init(self) -> None:
        """Xavier linear layers, unit norms and a N(0, 0.02) mask token."""
        super().random_init()
        official_init_(self)
        nn.init.normal_(self.mask_token, std=.02)

    def _pos_embed(self, grid: Tuple[int, int]) -> Tensor:
        if tuple(grid) == self.grid:
            return self.decoder_pos_embed
        return sincos_pos_embed_2d(grid,
                                   self.embed_dims).to(self.decoder_pos_embed)

    def latent(self, x: Tensor) -> Tensor:
        """Final encoder norm over an NCHW map -> ``(N, H*W, C)``."""
        return self.in_norm(x.flatten(2).transpose(1, 2))

    def forward(self,
                x: Tensor,
                mask: Tensor,
                predict_visible: bool = True) -> Tensor:
        """Predict the pixels of every token (or of the dropped ones).

        Args:
            x (Tensor): Last compact encoder map ``(N, C, h/4, w/4)``.
            mask (Tensor): Primary uniform mask ``(N, h, w)``, True =
                dropped.
            predict_visible (bool): Also predict the visible tokens. False
                skips their outputs in the last layer and leaves their rows
                zero (enough for a loss on the dropped tokens).
                Defaults to True.

        Returns:
            Tensor: ``(N, h*w, patch_size**2 * in_chans)``, raster order.
        """
        N, _, h4, w4 = x.shape
        mask = mask.bool()
        h, w = mask.shape[-2:]
        if (h, w) != (4 * h4, 4 * w4):
            raise ValueError(
                f'mask grid {h}x{w} does not match a stride-32 map of '
                f'{h4}x{w4} (expected a {4 * h4}x{4 * w4} token grid); pass '
                'the last compact stage of the encoder and the primary mask')
        x = self.decoder_embed(self.latent(x))  # (N, h4*w4, 4D)
        x = self.pixel_shuffle(x.transpose(1, 2).reshape(N, -1, h4, w4))
        x_vis = x.flatten(2).transpose(1, 2)  # (N, h*w/4, D), block order

        flat = mask.flatten(1)
        # raster ids: visible tokens in raster order, then dropped ones
        ids = torch.argsort(flat.to(torch.uint8), dim=1, stable=True)
        num_vis = x_vis.shape[1]
        if not self.official_pos_order:
            # bring the block-ordered features into raster order so each
            # feature meets its own position
            block_ids = visible_block_order(mask)
            x_vis = x_vis.gather(
                1,
                torch.argsort(block_ids, dim=1).unsqueeze(-1).expand_as(x_vis))
        pos = self._pos_embed((h, w)).to(x.dtype)  # (1, L, D)
        drop_ids = ids[:, num_vis:]
        x_vis = x_vis + _rows(pos, ids[:, :num_vis])
        # a mask row depends on its position only: mask token + position
        mask_rows = self.mask_token.to(x.dtype) + pos  # (1, L, D)
        x = torch.cat([x_vis, _rows(mask_rows, drop_ids)], dim=1)

        # so do the first layer's norm and qkv projection of those rows:
        # computed once per position of the grid, not once per image
        first = self.decoder_blocks[0]
        qkv_vis = first.attn.qkv(first.ln1(x_vis))
        qkv_mask = _rows(first.attn.qkv(first.ln1(mask_rows)), drop_ids)
        qkv = torch.cat([qkv_vis, qkv_mask], dim=1)
        last = len(self.decoder_blocks) - 1
        for i, block in enumerate(self.decoder_blocks):
            start = num_vis if i == last and not predict_visible else 0
            x = _layer_forward(block, x, start, qkv if i == 0 else None)
        if not predict_visible:
            ids = drop_ids
        x = self.decoder_pred(self.decoder_norm(x))  # (N, L or L_drop, P)

        # sequence position k predicts the token whose position it carries
        out = x.new_zeros(N, flat.shape[1], x.shape[-1])
        return out.scatter(1, ids.unsqueeze(-1).expand_as(x), x)


def _rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[b, index[n, k]]`` -> ``(N, K, C)``; ``table`` is
    ``(1 or N, L, C)``."""
    return table.expand(index.shape[0], -1, -1).gather(
        1,
        index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


def _layer_forward(layer: nn.Module,
                   x: Tensor,
                   start: int = 0,
                   qkv: Optional[Tensor] = None) -> Tensor:
    """``layer(x)[:, start:]`` of an mmpretrain ``TransformerEncoderLayer``.

    Queries, attention output, residuals and MLP are computed for the rows
    from ``start`` on only; keys and values for every row. ``qkv``, when
    given, is ``layer.attn.qkv(layer.ln1(x))`` computed by the caller.
    """
    attn = layer.attn
    N, L, _ = x.shape
    C, heads = attn.embed_dims, attn.num_heads
    if qkv is None and start == 0:
        qkv = attn.qkv(layer.ln1(x))
    if qkv is None:
        h = layer.ln1(x)
        weight, bias = attn.qkv.weight, attn.qkv.bias
        q = F.linear(h[:, start:], weight[:C],
                     None if bias is None else bias[:C])
        kv = F.linear(h, weight[C:], None if bias is None else bias[C:])
    else:
        q, kv = qkv[:, start:, :C], qkv[..., C:]
    q = q.reshape(N, L - start, heads, C // heads).transpose(1, 2)
    k, v = kv.reshape(N, L, 2, heads, C // heads).permute(2, 0, 3, 1, 4)
    y = attn.scaled_dot_product_attention(
        q, k, v, dropout_p=attn.attn_drop if attn.training else 0.)
    y = attn.proj(y.transpose(1, 2).reshape(N, L - start, C))
    x = x[:, start:] + attn.out_drop(attn.gamma1(attn.proj_drop(y)))
    return layer.ffn(layer.ln2(x), identity=x)
