# Copyright (c) um-mae contributors. All rights reserved.
"""Training hooks."""
import math
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

__all__ = ['NonFiniteLossError', 'FiniteLossHook', 'RNGStateHook']


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first non-finite loss, before it is saved.

    Runs after every training iteration with a priority above the
    checkpoint hook, so no checkpoint with NaN weights is ever written. The
    message names the iteration and, under AMP, the loss scale.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        bad = {
            k: float(v)
            for k, v in outputs.items()
            if k.startswith('loss') and hasattr(v, 'numel') and v.numel() == 1
            and not math.isfinite(float(v))
        }
        if not bad:
            return
        msg = (f'non-finite loss {bad} at iteration {runner.iter + 1} '
               f'(epoch {runner.epoch + 1}); training stopped before saving '
               'a checkpoint')
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        if scaler is not None and hasattr(scaler, 'get_scale'):
            msg += f'; AMP loss scale {scaler.get_scale():g}'
        msg += ('. Lower the learning rate, set optim_wrapper.clip_grad='
                'dict(max_norm=...), or check the data; resume from the last '
                'checkpoint with --resume')
        raise NonFiniteLossError(msg)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the main process's random generators with each checkpoint.

    On ``--resume`` they are restored, so that randomness drawn in the main
    process (random masks drawn by the model, drop path, ...) continues as
    in an uninterrupted run. Loading a checkpoint with ``load_from`` only
    (fine-tuning) leaves the generators alone.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        import random

        import numpy as np
        import torch
        state = dict(
            torch=torch.get_rng_state(),
            numpy=np.random.get_state(),
            python=random.getstate())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None or not getattr(runner, '_resume', False):
            return
        import random

        import numpy as np
        import torch
        torch.set_rng_state(state['torch'])
        np.random.set_state(state['numpy'])
        random.setstate(state['python'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
