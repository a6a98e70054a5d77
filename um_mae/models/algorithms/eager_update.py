# Copyright (c) um-mae contributors. All rights reserved.
"""A ``train_step`` that ``torch.compile`` turns into one forward graph.

mmengine's ``Runner(compile=True)`` compiles ``model.train_step`` whole:
data preprocessing, forward and loss, and ``OptimWrapper.update_params``
(backward, the optimizer step, iteration counters, logging). dynamo cannot
trace ``loss.backward()`` (a graph break in any case), recompiles when the
wrapper's counters or logged values change, and fails on the optimizer's
parameter groups when mmengine's constructor built them as ``ConfigDict``
(any ``paramwise_cfg``). :class:`EagerUpdateMixin` keeps the update out of
the compiled region: the forward is one graph, the backward runs the
compiled backward graph, and the optimizer step and mmengine's bookkeeping
run eagerly, as without ``compile``.
"""
from typing import Dict, Union

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.models import SimMIM
from mmpretrain.registry import MODELS
from torch import Tensor

__all__ = ['EagerUpdateMixin', 'CompilableSimMIM']


@torch.compiler.disable
def _update_params(optim_wrapper: OptimWrapper, loss: Tensor) -> None:
    """``optim_wrapper.update_params(loss)``, never traced by dynamo."""
    optim_wrapper.update_params(loss)


class EagerUpdateMixin:
    """``BaseModel.train_step`` with the parameter update outside dynamo.

    Same steps and results as mmengine's ``BaseModel.train_step``; only
    ``update_params`` is called through a ``torch.compiler.disable``-d
    function.
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """Preprocess, forward, loss (compiled as one graph under
        ``torch.compile``), then backward and update (eager).

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper): Updates the parameters.

        Returns:
            dict[str, Tensor]: The log variables.
        """
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        _update_params(optim_wrapper, parsed_losses)
        return log_vars


@MODELS.register_module()
class CompilableSimMIM(EagerUpdateMixin, SimMIM):
    """mmpretrain's ``SimMIM`` (Xie et al., 2022) with the update of
    :class:`EagerUpdateMixin`, so that ``compile=True`` compiles it."""
