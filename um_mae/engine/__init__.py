# Copyright (c) um-mae contributors. All rights reserved.
from .atomic_save import AtomicLocalBackend, atomic_write
from .checkpoint import load_local_checkpoint
from .config_bases import find_renamed_packages
from .hooks import FiniteLossHook, NonFiniteLossError, RNGStateHook
from .optimizers import UMLayerDecayOptimWrapperConstructor

__all__ = [
    'AtomicLocalBackend', 'atomic_write', 'load_local_checkpoint',
    'find_renamed_packages', 'FiniteLossHook', 'NonFiniteLossError',
    'RNGStateHook', 'UMLayerDecayOptimWrapperConstructor'
]
