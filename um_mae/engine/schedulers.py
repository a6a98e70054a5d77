# Copyright (c) um-mae contributors. All rights reserved.
"""The learning-rate schedule of MAE and UM-MAE pre-training / fine-tuning.

UM-MAE (Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022) keeps MAE's
schedule (He et al., 2022, appendix A): the lr is a function of the
*fractional* epoch ``t = iteration / iterations_per_epoch``, linear from 0
to the peak over the warm-up epochs, then a half-cycle cosine to ``eta_min``
at the last epoch. It is set once per optimizer update, at the first
micro-batch of a gradient-accumulation window, so every update uses the lr
of the window's start.

mmengine's ``LinearLR`` + ``CosineAnnealingLR`` pair cannot express it: the
warm-up starts at ``start_factor`` x peak (never 0) and reaches the peak one
iteration early, and with ``accumulative_counts`` an update uses the lr of
the window's *last* micro-batch.
"""
import math
from typing import List, Union

from mmengine.optim import BaseOptimWrapper
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS
from torch.optim import Optimizer


def warmup_half_cosine(epoch: float,
                       peak: float,
                       warmup_epochs: float,
                       max_epochs: float,
                       eta_min: float = 0.) -> float:
    """The lr at a fractional epoch: linear warm-up, then half-cycle cosine.

    Args:
        epoch (float): Fractional epoch, ``iteration / iterations_per_epoch``.
        peak (float): The lr at the end of the warm-up.
        warmup_epochs (float): Epochs of linear warm-up from 0.
        max_epochs (float): Epoch at which the cosine reaches ``eta_min``.
        eta_min (float): The final lr. Defaults to 0.

    Returns:
        float: The learning rate.
    """
    if epoch < warmup_epochs:
        return peak * epoch / warmup_epochs
    progress = (epoch - warmup_epochs) / (max_epochs - warmup_epochs)
    return eta_min + (peak - eta_min) * 0.5 * (1. +
                                               math.cos(math.pi * progress))


@PARAM_SCHEDULERS.register_module()
class WarmupHalfCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Linear warm-up from 0 then half-cycle cosine, per accumulation window.

    Declared with epochs and converted to iterations by mmengine
    (``by_epoch=True, convert_to_iter_based=True``, as every epoch-based
    scheduler that changes the lr within an epoch)::

        param_scheduler = dict(
            type='WarmupHalfCosineLR', warmup_epochs=10, eta_min=0.,
            by_epoch=True, begin=0, end=200, convert_to_iter_based=True)

    The lr of iteration ``i`` is :func:`warmup_half_cosine` at the
    fractional epoch ``(w - begin) / epoch_length`` of the first iteration
    ``w`` of its gradient-accumulation window (``w = i - i %
    accumulative_counts``; the counts are read from the
    optimizer wrapper the scheduler is built with, so the config states
    them once, in ``optim_wrapper``). Every parameter group follows the
    same curve scaled by its own initial lr; ``eta_min`` is scaled by the
    group's ``lr_scale`` where the optimizer constructor sets one (layer-
    wise lr decay), as ``param_group['lr'] = lr * lr_scale`` in the official
    code.

    Args:
        optimizer (BaseOptimWrapper or Optimizer): The optimizer (wrapper).
        warmup_epochs (float): Epochs of linear warm-up from lr 0.
        eta_min (float): The lr at ``end`` (of a group without
            ``lr_scale``). Defaults to 0.
        begin (int): First iteration of the schedule. Defaults to 0.
        end (int): Iteration at which the cosine reaches ``eta_min``.
        epoch_length (int): Iterations per epoch; set by mmengine's
            conversion.
        last_step (int): Used for resuming without a state dict. Defaults
            to -1.
        by_epoch (bool): Must be False after the conversion.
        verbose (bool): Print every lr change. Defaults to False.
    """

    def __init__(self,
                 optimizer: Union[Optimizer, BaseOptimWrapper],
                 warmup_epochs: float,
                 eta_min: float = 0.,
                 begin: int = 0,
                 end: int = None,
                 epoch_length: int = None,
                 last_step: int = -1,
                 by_epoch: bool = False,
                 verbose: bool = False):
        if by_epoch or epoch_length is None:
            raise ValueError(
                'WarmupHalfCosineLR sets the lr every iteration from the '
                'fractional epoch; declare it in epochs with by_epoch=True '
                'and convert_to_iter_based=True (got by_epoch='
                f'{by_epoch}, epoch_length={epoch_length})')
        if end is None:
            raise ValueError('WarmupHalfCosineLR needs `end` (the last '
                             'epoch, e.g. end=200)')
        if warmup_epochs < 0:
            raise ValueError(
                f'warmup_epochs must be >= 0, got {warmup_epochs}')
        # a run shorter than the warm-up (e.g. a smoke test with
        # train_cfg.max_epochs=1) stays on the warm-up line, as the
        # official formula does
        self.warmup_epochs = warmup_epochs
        self.eta_min = eta_min
        self.epoch_length = epoch_length
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=False,
            verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              begin=0,
                              end=None,
                              by_epoch=True,
                              epoch_length=None,
                              **kwargs):
        """Build the iteration-based scheduler from an epoch-based config."""
        if not by_epoch:
            raise ValueError('convert_to_iter_based needs by_epoch=True')
        if not epoch_length or epoch_length <= 0:
            raise ValueError(
                f'epoch_length must be a positive integer, got {epoch_length}')
        if end is None:
            raise ValueError('WarmupHalfCosineLR needs `end` (the last '
                             'epoch, e.g. end=200)')
        return cls(
            *args,
            begin=int(begin * epoch_length),
            end=int(end * epoch_length),
            epoch_length=epoch_length,
            by_epoch=False,
            **kwargs)

    @property
    def accumulative_counts(self) -> int:
        """Micro-batches per optimizer update, from the optimizer wrapper."""
        return getattr(self.optimizer, '_accumulative_counts', 1)

    def _get_value(self) -> List[float]:
        """The lr of every group for iteration ``last_step``."""
        # mmengine's accumulation windows start at multiples of the counts
        # of the global iteration (``_global_step`` here)
        accum = self.accumulative_counts
        step = self._global_step - self._global_step % accum
        epoch = max(step - self.begin, 0) / self.epoch_length
        max_epochs = (self.end - self.begin) / self.epoch_length
        values = []
        for base, group in zip(self.base_values, self.optimizer.param_groups):
            eta_min = self.eta_min * group.get('lr_scale', 1.)
            values.append(
                warmup_half_cosine(epoch, base, self.warmup_epochs, max_epochs,
                                   eta_min))
        return values
