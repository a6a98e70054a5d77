# Copyright (c) um-mae contributors. All rights reserved.
"""Plain ViT encoder for UM-MAE pre-training with pipeline masks.

The pilot of Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022: MAE on a plain
ViT-B/16 with Uniform Sampling (one kept token per 2x2 block) and
Secondary Masking (a share of the kept tokens is replaced by a learnable
token inside the encoder).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models import MAEViT
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import Tensor

from ..utils import (BackboneContractMixin, check_mask_inputs,
                     check_secondary_superset, parse_arch, parse_indices,
                     resize_checkpoint_pos_embed)

__all__ = ['UMViT']


@MODELS.register_module()
class UMViT(BackboneContractMixin, MAEViT):
    """ViT that encodes the tokens a data-pipeline mask leaves visible.

    A drop-in replacement of mmpretrain's ``MAEViT`` for UM-MAE: instead of
    drawing a random mask, :meth:`forward` takes the primary ``mask`` (and
    optionally the ``secondary_mask``) produced by ``UniformMaskGenerator``.
    The visible tokens keep their raster order; secondary-masked ones are
    replaced by ``vis_mask_token`` plus their own position embedding. The
    output triple ``(latent, mask, ids_restore)`` is the one
    ``MAEPretrainDecoder`` consumes, so mmpretrain's decoder and
    ``MAEPretrainHead`` are reused unchanged.

    Without a mask it is mmpretrain's ``VisionTransformer`` (the same keys),
    so the pre-trained ``backbone.*`` weights fine-tune with it or with
    ``VisionTransformer`` directly. ``CheckedPretrained`` loads MAE, UM-MAE,
    timm / DeiT, MoCo v3 and mmpretrain ViT checkpoints into it exactly (a
    release with layer scale needs ``layer_cfgs=dict(
    layer_scale_init_value=...)``); BEiT's relative position biases have no
    place in it (use ``WindowedViT`` or mmpretrain's ``BEiTViT``).

    Args:
        arch (str | dict): ViT architecture, see ``VisionTransformer``.
            Defaults to ``'b'``.
        img_size (int | tuple): Input size the position table is built
            for. Defaults to 224.
        patch_size (int): Token size in pixels. Defaults to 16.
        out_indices (Sequence[int] | int): Layers to output in the unmasked
            mode. Defaults to -1.
        drop_rate (float): Dropout after the position embedding and in the
            layers. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        norm_cfg (dict): Norm layers. Defaults to
            ``dict(type='LN', eps=1e-6)``.
        final_norm (bool): Whether to apply the final ``ln1``. Defaults to
            True.
        out_type (str): Output of the unmasked mode, see
            ``VisionTransformer``. Defaults to ``'raw'``.
        interpolate_mode (str): Position table resizing mode. Defaults to
            ``'bicubic'``.
        patch_cfg (dict): Extra patch embedding options. Defaults to
            ``dict()``.
        layer_cfgs (dict): Extra layer options. Defaults to ``dict()``.
        with_vis_mask_token (bool): Create the learnable ``vis_mask_token``
            used for secondary masking. Defaults to False.
        learnable_pos_embed (bool): Train the position table, as MAE's
            fine-tuning does; pre-training keeps MAE's fixed sin-cos table.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """
    # a final norm the model is built without (final_norm=False) is not
    # used on purpose (see um_mae.models.converters.load_pretrained)
    pretrained_unused_keys = (r'ln1\.', )
    # as mmpretrain's MAEViT: the patch embedding's bias and the attention
    # projections keep PyTorch's init (the MAE configs add Xavier linear
    # layers through the algorithm's init_cfg)
    construction_init_keys = (r'patch_embed\.projection\.bias$',
                              r'layers\.\d+\.attn\.(qkv|proj)\.')
    _arch_keys = ('embed_dims', 'num_layers', 'num_heads',
                  'feedforward_channels')

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 out_indices: Union[int, list] = -1,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 final_norm: bool = True,
                 out_type: str = 'raw',
                 interpolate_mode: str = 'bicubic',
                 patch_cfg: dict = dict(),
                 layer_cfgs: dict = dict(),
                 with_vis_mask_token: bool = False,
                 learnable_pos_embed: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        arch = parse_arch(arch, self.arch_zoo, self._arch_keys)
        out_indices = parse_indices(
            out_indices, arch['num_layers'], unit='layers')
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=list(out_indices),
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            norm_cfg=norm_cfg,
            final_norm=final_norm,
            out_type=out_type,
            interpolate_mode=interpolate_mode,
            patch_cfg=patch_cfg,
            layer_cfgs=layer_cfgs,
            init_cfg=init_cfg)
        self.out_indices = out_indices
        self.stage_depths = [self.num_layers]
        if with_vis_mask_token:
            self.vis_mask_token = nn.Parameter(
                torch.zeros(1, 1, self.embed_dims))
        else:
            self.vis_mask_token = None
        self.pos_embed.requires_grad = learnable_pos_embed

    def random_init(self) -> None:
        """MAEViT's random init and a N(0, 0.02) ``vis_mask_token``.

        MAEViT: sin-cos ``pos_embed``, Xavier patch embedding weight,
        N(0, 0.02) class token, and the MLPs of mmpretrain's
        ``TransformerEncoderLayer``; the rest keeps PyTorch's init
        (``construction_init_keys``).
        """
        super().random_init()
        if self.vis_mask_token is not None:
            nn.init.normal_(self.vis_mask_token, std=.02)

    def _prepare_pos_embed(self, state_dict, prefix, *args, **kwargs):
        """Resize a checkpoint's position table to this model's grid."""
        resize_checkpoint_pos_embed(state_dict, prefix + 'pos_embed',
                                    self.pos_embed, self.patch_resolution,
                                    self.num_extra_tokens,
                                    self.interpolate_mode)

    def _flat_mask(self, mask: Tensor, name: str, num_tokens: int) -> Tensor:
        """(N, h, w) or (N, L) mask -> bool (N, L), checked."""
        mask = mask.to(torch.bool).flatten(1)
        if mask.shape[1] != num_tokens:
            raise ValueError(
                f'{name} has {mask.shape[1]} tokens per image but the input '
                f'has {num_tokens}; generate the mask on the token grid of '
                'the network input (UniformMaskGenerator(token_size=...) '
                'with the patch size)')
        return mask

    def forward(
        self,
        x: Tensor,
        mask: Optional[Tensor] = None,
        secondary_mask: Optional[Tensor] = None
    ) -> Union[Tuple[Tensor, ...], Tuple[Tensor, Tensor, Tensor]]:
        """Encode full images, or only the tokens ``mask`` keeps.

        Args:
            x (Tensor): Images ``(N, C, H, W)``.
            mask (Tensor, optional): Primary mask, bool ``(N, h, w)`` or
                ``(N, h*w)``, True = dropped. Every image must keep the same
                number of tokens (true for uniform masks). None runs the
                plain ``VisionTransformer`` forward. Defaults to None.
            secondary_mask (Tensor, optional): Superset of ``mask``; kept
                tokens it marks enter the encoder as ``vis_mask_token`` plus
                their position embedding. Defaults to None.

        Returns:
            tuple: Without a mask, the ``VisionTransformer`` outputs. With a
            mask, ``(latent, mask, ids_restore)``: ``latent``
            ``(N, 1 + L_vis, C)`` (class token, then the kept tokens in
            raster order, after the final norm), ``mask`` float ``(N, L)``
            (1 = dropped) and ``ids_restore`` ``(N, L)``, which maps the
            sequence [kept tokens, dropped tokens] (each in raster order)
            back to raster order, as ``MAEPretrainDecoder`` expects.
        """
        check_mask_inputs(mask, secondary_mask, self.vis_mask_token)
        if mask is None:
            return super().forward(x, mask=None)

        N = x.shape[0]
        x, hw = self.patch_embed(x)  # (N, L, C)
        L, C = x.shape[1:]
        mask = self._flat_mask(mask, 'mask', L)
        num_kept = (~mask).sum(1)
        if not bool((num_kept == num_kept[0]).all()):
            raise ValueError(
                'every image of a batch must keep the same number of tokens,'
                f' got {num_kept.tolist()}; use a fixed-ratio mask generator'
                ' such as UniformMaskGenerator')
        num_kept = int(num_kept[0])

        pos_embed = resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            hw,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        patch_pos = pos_embed[:, 1:].expand(N, -1, -1)  # (N, L, C)
        x = x + patch_pos

        # a stable sort puts the kept tokens first, each group in raster
        # order; ids_restore undoes it for the decoder
        ids_shuffle = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :num_kept, None].expand(-1, -1, C)
        x = x.gather(1, ids_keep)  # (N, L_vis, C)

        if secondary_mask is not None:
            secondary_mask = self._flat_mask(secondary_mask, 'secondary_mask',
                                             L)
            check_secondary_superset(mask, secondary_mask)
            replaced = secondary_mask.gather(1, ids_keep[..., 0])
            # the replaced tokens keep their position information
            token = self.vis_mask_token + patch_pos.gather(1, ids_keep)
            x = torch.where(replaced[..., None], token, x)

        cls_token = (self.cls_token + pos_embed[:, :1]).expand(N, -1, -1)
        x = torch.cat([cls_token, x], dim=1)  # (N, 1 + L_vis, C)
        for layer in self.layers:
            x = layer(x)
        if self.final_norm:
            x = self.ln1(x)
        return x, mask.to(x.dtype), ids_restore
