# Copyright (c) um-mae contributors. All rights reserved.
"""SimMIM decoder with the encoder's final norm, for backbones without one.

Used by the SimMIM baseline of Li et al., "Uniform Masking: Enabling MAE
Pre-training for Pyramid-based Vision Transformers with Locality", 2022.
"""
from typing import Optional

from mmcv.cnn import build_norm_layer
from mmpretrain.models.necks import SimMIMLinearDecoder
from mmpretrain.registry import MODELS
from torch import Tensor

__all__ = ['SimMIMNormLinearDecoder']


@MODELS.register_module()
class SimMIMNormLinearDecoder(SimMIMLinearDecoder):
    """``LayerNorm`` followed by mmpretrain's ``SimMIMLinearDecoder``.

    Our pyramid backbones return raw stage maps; the final pre-training norm
    lives in the neck (as ``in_norm`` of ``MAEPyramidDecoder``). This neck
    applies it over channels, then a 1x1 conv and a pixel shuffle back to
    the image resolution.

    Args:
        in_channels (int): Channels of the encoder's last stage.
        encoder_stride (int): Total stride of that stage. Defaults to 32.
        norm_cfg (dict, optional): The norm; None disables it.
            Defaults to ``dict(type='LN', eps=1e-6)``.
    """

    def __init__(
        self,
        in_channels: int,
        encoder_stride: int = 32,
        norm_cfg: Optional[dict] = dict(type='LN', eps=1e-6)
    ) -> None:
        super().__init__(in_channels, encoder_stride)
        self.in_norm = build_norm_layer(norm_cfg, in_channels)[1] \
            if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, h, w) -> reconstructed image (N, 3, h*s, w*s)."""
        if self.in_norm is not None:
            x = self.in_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return super().forward(x)
