# Copyright (c) um-mae contributors. All rights reserved.
from .mae_pyramid_decoder import MAEPyramidDecoder
from .simmim_norm_linear_decoder import SimMIMNormLinearDecoder
from .stage_norm_projection import StageNormProjection

__all__ = [
    'MAEPyramidDecoder', 'SimMIMNormLinearDecoder', 'StageNormProjection'
]
