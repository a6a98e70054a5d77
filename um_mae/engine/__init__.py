# Copyright (c) um-mae contributors. All rights reserved.
from .atomic_save import atomic_write, remove_stale_temporaries
from .checkpoint import (check_last_checkpoint, check_model_checkpoint,
                         check_resume_checkpoint, describe_checkpoint,
                         load_local_checkpoint, register_checkpoint_loader)
from .checkpoint_hook import AtomicCheckpointHook
from .config_bases import find_renamed_packages
from .hooks import (UM_MAE_HOOKS, DataSummaryHook, FiniteLossHook,
                    NonFiniteLossError, PretrainedHook, RankMeanLossHook,
                    RNGStateHook, TrainingNoticesHook)
from .optimizers import UMLayerDecayOptimWrapperConstructor
from .schedulers import WarmupHalfCosineLR, warmup_half_cosine
from .work_dir_lock import WorkDirInUseError, WorkDirLock

__all__ = [
    'atomic_write', 'remove_stale_temporaries', 'load_local_checkpoint',
    'register_checkpoint_loader', 'describe_checkpoint',
    'check_resume_checkpoint', 'check_last_checkpoint',
    'check_model_checkpoint', 'AtomicCheckpointHook', 'find_renamed_packages',
    'UM_MAE_HOOKS', 'DataSummaryHook', 'FiniteLossHook', 'NonFiniteLossError',
    'PretrainedHook', 'RankMeanLossHook', 'RNGStateHook',
    'TrainingNoticesHook', 'UMLayerDecayOptimWrapperConstructor',
    'WarmupHalfCosineLR', 'warmup_half_cosine', 'WorkDirInUseError',
    'WorkDirLock'
]
