# Copyright (c) um-mae contributors. All rights reserved.
"""Checkpoint loading that works with torch >= 2.6.

torch 2.6 made ``weights_only=True`` the default of :func:`torch.load`.
mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without the
argument, so resuming a run (whose checkpoint holds the message hub, numpy
scalars and the optimizer state) fails with an ``UnpicklingError``. We
re-register mmengine's loader for local paths with an explicit
``weights_only=False``: runner checkpoints are pickles written by the
training itself. As with any pickle, load only files you trust.
"""
import os.path as osp

import torch
from mmengine.runner import CheckpointLoader

__all__ = ['load_local_checkpoint']


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename, map_location=None):
    """Load a local checkpoint with full unpickling (mmengine's scheme '').

    Args:
        filename (str): Local checkpoint path.
        map_location (str | None): As in :func:`torch.load`.
            Defaults to None.

    Returns:
        dict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)
