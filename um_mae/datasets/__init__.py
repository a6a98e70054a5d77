# Copyright (c) um-mae contributors. All rights reserved.
from .seeding import EpochStampedSampler, PerSampleSeedDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['EpochStampedSampler', 'PerSampleSeedDataset']
