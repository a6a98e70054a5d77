# Copyright (c) um-mae contributors. All rights reserved.
from .loading import CheckedLoadImageFromFile
from .mask_generators import UniformMaskGenerator

__all__ = ['CheckedLoadImageFromFile', 'UniformMaskGenerator']
