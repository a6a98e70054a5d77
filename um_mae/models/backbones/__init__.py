# Copyright (c) um-mae contributors. All rights reserved.
from .pvt import UMPVT, convert_official_pvt
from .swin import UMSwinTransformer, convert_official_swin
from .vit import UMViT, convert_official_vit, convert_official_vit_decoder
from .vit_adapter import ViTDetBackbone

__all__ = [
    'UMPVT', 'convert_official_pvt', 'UMSwinTransformer',
    'convert_official_swin', 'UMViT', 'convert_official_vit',
    'convert_official_vit_decoder', 'ViTDetBackbone'
]
