# Copyright (c) um-mae contributors. All rights reserved.
"""Data randomness that depends on (seed, epoch, sample) only.

The random crops, flips and masks of a sample are usually drawn from the
numpy generator of whichever dataloader worker loads it, so they change with
the number of workers and processes and restart when a run is resumed.
Pre-training comparisons (1 process x 2b vs 2 processes x b) and resumed
runs are only equal if every sample gets the same randomness wherever it is
loaded. Two pieces make that so:

* :class:`EpochStampedSampler` (a :class:`mmengine.dataset.DefaultSampler`)
  yields ``(epoch + 1) * len(dataset) + index`` instead of ``index``;
* :class:`PerSampleSeedDataset` wraps the dataset, decodes the stamp and
  seeds numpy's and python's global generators from ``(seed, epoch, index)``
  before running the pipeline (restoring them afterwards).

Use them together::

    train_dataloader = dict(
        sampler=dict(type='mmpretrain.EpochStampedSampler', shuffle=True),
        dataset=dict(type='mmpretrain.PerSampleSeedDataset', seed=0,
                     dataset=dict(type='mmpretrain.CustomDataset', ...)))
"""
import random
from typing import Iterator, Union

import numpy as np
from mmengine.dataset import DefaultSampler
from mmpretrain.registry import DATA_SAMPLERS, DATASETS

__all__ = ['EpochStampedSampler', 'PerSampleSeedDataset']


@DATA_SAMPLERS.register_module()
class EpochStampedSampler(DefaultSampler):
    """DefaultSampler whose indices also carry the epoch.

    Yields ``(epoch + 1) * len(dataset) + index``; only
    :class:`PerSampleSeedDataset` understands these stamps. Order, sharding
    and round-up are exactly those of ``DefaultSampler``.
    """

    def __iter__(self) -> Iterator[int]:
        offset = (self.epoch + 1) * len(self.dataset)
        return (offset + i for i in super().__iter__())


@DATASETS.register_module()
class PerSampleSeedDataset:
    """Run a dataset's pipeline with randomness seeded per sample and epoch.

    Args:
        dataset (dict | Dataset): The dataset (or its config) to wrap.
        seed (int): Base seed. Defaults to 0.
    """

    def __init__(self, dataset: Union[dict, object], seed: int = 0) -> None:
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        self.seed = int(seed)

    @property
    def metainfo(self) -> dict:
        return getattr(self.dataset, 'metainfo', {})

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def sample_seed(self, epoch: int, index: int) -> int:
        """The seed of sample ``index`` in ``epoch``."""
        seq = np.random.SeedSequence([self.seed, epoch, index])
        return int(seq.generate_state(1)[0])

    def __getitem__(self, stamp: int):
        n = len(self.dataset)
        if stamp < n:
            raise ValueError(
                f'PerSampleSeedDataset got plain index {stamp}: use it with '
                "sampler=dict(type='mmpretrain.EpochStampedSampler'), which "
                'tells it the epoch')
        epoch, index = divmod(int(stamp), n)
        seed = self.sample_seed(epoch - 1, index)
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed)
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(seed={self.seed}, '
                f'dataset={self.dataset!r})')
