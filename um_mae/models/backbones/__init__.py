# Copyright (c) um-mae contributors. All rights reserved.
from .pvt import UMPVT, convert_official_pvt
from .swin import UMSwinTransformer, convert_official_swin
from .vit import UMViT, convert_official_vit, convert_official_vit_decoder

__all__ = [
    'UMPVT', 'convert_official_pvt', 'UMSwinTransformer',
    'convert_official_swin', 'UMViT', 'convert_official_vit',
    'convert_official_vit_decoder'
]
