# Copyright (c) um-mae contributors. All rights reserved.
from .mask_generators import UniformMaskGenerator

__all__ = ['UniformMaskGenerator']
