# Copyright (c) um-mae contributors. All rights reserved.
from .layer_decay_constructor import (DEFAULT_NO_DECAY_NAMES,
                                      UMLayerDecayOptimWrapperConstructor,
                                      layer_depths)

__all__ = [
    'DEFAULT_NO_DECAY_NAMES', 'UMLayerDecayOptimWrapperConstructor',
    'layer_depths'
]
