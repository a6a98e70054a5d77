# Copyright (c) um-mae contributors. All rights reserved.
from .color_jitter import UMColorJitter, shift_hue
from .loading import CheckedLoadImageFromFile
from .mask_generators import UniformMaskGenerator

__all__ = [
    'CheckedLoadImageFromFile', 'UMColorJitter', 'UniformMaskGenerator',
    'shift_hue'
]
