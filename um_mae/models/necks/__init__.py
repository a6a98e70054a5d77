# Copyright (c) um-mae contributors. All rights reserved.
from mmpretrain.registry import MODELS

from .mae_pyramid_decoder import MAEPyramidDecoder
from .simmim_norm_linear_decoder import SimMIMNormLinearDecoder
from .stage_norm_projection import StageNormProjection

try:
    from .vit_pyramids import ViTMultiScaleAdaptor, ViTSimplePyramid
except ImportError as error:  # a pre-training-only install: no mmseg
    _PYRAMID_ERROR = (
        "the ViT pyramid necks are mmseg's Feature2Pyramid, which cannot "
        f'be imported ({error}); add mmcv.ops, mmdet and mmseg with '
        '`bash tools/install.sh --with-ops`')

    def _needs_mmseg(*args, **kwargs):
        raise ImportError(_PYRAMID_ERROR)

    for _name in ('ViTMultiScaleAdaptor', 'ViTSimplePyramid'):
        MODELS.register_module(name=_name, module=_needs_mmseg)
    ViTMultiScaleAdaptor = ViTSimplePyramid = _needs_mmseg

__all__ = [
    'MAEPyramidDecoder', 'SimMIMNormLinearDecoder', 'StageNormProjection',
    'ViTMultiScaleAdaptor', 'ViTSimplePyramid'
]
