# Copyright (c) um-mae contributors. All rights reserved.
"""The masks a data pipeline attaches to the samples of a batch.

``UniformMaskGenerator`` (or SimMIM's generator) adds ``mask`` and
optionally ``secondary_mask`` to every sample; the algorithms stack them.
"""
from typing import List, Optional, Tuple

import torch
from mmpretrain.structures import DataSample
from torch import Tensor

__all__ = ['pipeline_masks', 'stack_masks']


def stack_masks(data_samples: List[DataSample], key: str,
                device: torch.device) -> Optional[Tensor]:
    """Stack a per-sample mask field into a bool ``(N, h, w)`` tensor.

    ``PackInputs`` turns ``mask`` into a tensor but leaves other
    ``algorithm_keys`` as numpy arrays; both are accepted. Returns None
    when the samples do not carry ``key``.
    """
    if not data_samples or key not in data_samples[0]:
        return None
    return torch.stack([
        torch.as_tensor(ds.get(key), device=device) for ds in data_samples
    ]).bool()


def pipeline_masks(data_samples: List[DataSample], device: torch.device,
                   algorithm: str) -> Tuple[Tensor, Optional[Tensor]]:
    """The ``mask`` and optional ``secondary_mask`` of the data pipeline.

    Raises:
        ValueError: If the samples carry no ``mask``.
    """
    mask = stack_masks(data_samples, 'mask', device)
    if mask is None:
        raise ValueError(f'{algorithm} needs data_samples with a "mask"; '
                         'add UniformMaskGenerator to the train pipeline')
    return mask, stack_masks(data_samples, 'secondary_mask', device)
