# Copyright (c) um-mae contributors. All rights reserved.
from .pvt import UMPVT
from .swin import UMSwinTransformer
from .vit import UMViT
from .vit_adapter import ViTDetBackbone

__all__ = ['UMPVT', 'UMSwinTransformer', 'UMViT', 'ViTDetBackbone']
