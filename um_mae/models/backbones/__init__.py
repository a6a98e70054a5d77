# Copyright (c) um-mae contributors. All rights reserved.
from .pvt import UMPVT
from .swin import UMSwinTransformer
from .vit import UMViT
from .windowed_vit import WindowedViT

__all__ = ['UMPVT', 'UMSwinTransformer', 'UMViT', 'WindowedViT']
