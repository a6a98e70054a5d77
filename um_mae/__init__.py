# Copyright (c) um-mae contributors. All rights reserved.
"""um_mae: Uniform Masking MAE for pyramid vision transformers.

Importing the package registers its modules in the mmpretrain registries
(reach them from mmdet / mmseg configs as ``type='mmpretrain.<Name>'`` with
``custom_imports=dict(imports=['um_mae'], allow_failed_imports=False)``)
and does nothing else. The tool layer, :mod:`um_mae.toolkit` (the
launcher's command line, benchmark, demo data, data checks, figures), is
imported by ``tools/`` only; see ``docs/architecture.md``.
"""
from . import datasets, engine, models  # noqa: F401
from .version import __version__

__all__ = ['__version__']
