# Copyright (c) um-mae contributors. All rights reserved.
from .color_jitter import UMColorJitter, shift_hue
from .loading import CheckedLoadImageFromFile, CheckSegMapSize
from .mask_generators import UniformMaskGenerator

__all__ = [
    'CheckedLoadImageFromFile', 'CheckSegMapSize', 'UMColorJitter',
    'UniformMaskGenerator', 'shift_hue'
]
