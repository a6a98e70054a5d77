# Copyright (c) um-mae contributors. All rights reserved.
"""A ``train_step`` that ``torch.compile`` turns into one forward graph.

mmengine's ``Runner(compile=True)`` compiles ``model.train_step`` whole:
the data preprocessor (moving each data sample to the device), forward and
loss, and ``OptimWrapper.update_params`` (backward, the optimizer step,
iteration counters, logging). Traced by dynamo, the data samples' metainfo
(image paths, original shapes, sample indices) becomes guards, so every
batch recompiles the step until dynamo gives up and runs it eagerly;
``loss.backward()`` breaks the graph in any case; and the optimizer step
fails on the parameter groups mmengine's constructor builds as
``ConfigDict`` (any ``paramwise_cfg``). :class:`EagerUpdateMixin` keeps the
preprocessing and the update out of the compiled region: the forward and
loss are one graph, compiled once per input shape; the backward runs the
compiled backward graph; the preprocessing, the optimizer step and
mmengine's bookkeeping run eagerly, as without ``compile``.
"""
from typing import Dict, List, Tuple, Union

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.models import SimMIM
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .pipeline_masks import pipeline_masks

__all__ = ['EagerUpdateMixin', 'CompilableSimMIM']


@torch.compiler.disable
def _preprocess(data_preprocessor, data: Union[dict, tuple, list]):
    """``data_preprocessor(data, True)``, never traced by dynamo."""
    return data_preprocessor(data, True)


@torch.compiler.disable
def _update_params(optim_wrapper: OptimWrapper, loss: Tensor) -> None:
    """``optim_wrapper.update_params(loss)``, never traced by dynamo."""
    optim_wrapper.update_params(loss)


class EagerUpdateMixin:
    """``BaseModel.train_step`` with preprocessing and update outside dynamo.

    The steps and results of mmengine's ``BaseModel.train_step``; the data
    preprocessor and ``update_params`` are called through
    ``torch.compiler.disable``-d functions, and the preprocessor runs before
    ``optim_wrapper.optim_context`` (its autocast does not change the
    preprocessor's elementwise normalisation).

    Under distributed training mmengine compiles the ``train_step`` of its
    ``MMDistributedDataParallel`` wrapper instead, which this mixin does not
    reach.
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """Preprocess (eager), forward and loss (one graph under
        ``torch.compile``), then backward and update (eager).

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper): Updates the parameters.

        Returns:
            dict[str, Tensor]: The log variables.
        """
        data = _preprocess(self.data_preprocessor, data)
        with optim_wrapper.optim_context(self):
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        _update_params(optim_wrapper, parsed_losses)
        return log_vars


@MODELS.register_module()
class CompilableSimMIM(EagerUpdateMixin, SimMIM):
    """mmpretrain's ``SimMIM`` (Xie et al., 2022) with the update of
    :class:`EagerUpdateMixin`, so that ``compile=True`` compiles it."""

    @torch.no_grad()
    def reconstruct(
            self, inputs: Tensor,
            data_samples: List[DataSample]) -> Tuple[Tensor, Tensor, None]:
        """Reconstruct images as :meth:`loss` predicts them.

        Args:
            inputs (Tensor): Preprocessed images ``(N, 3, H, W)``.
            data_samples (List[DataSample]): Carry ``mask``, bool
                ``(h, w)``.

        Returns:
            tuple: ``(images, mask, None)``: the reconstructions
            ``(N, 3, H, W)`` in the space of ``inputs`` and the bool
            ``(N, h, w)`` token mask, True = replaced by the mask token.
        """
        mask, _ = pipeline_masks(data_samples, inputs.device,
                                 type(self).__name__)
        # the first map, as SimMIM.loss
        return self.neck(self.backbone(inputs, mask)[0]), mask, None
