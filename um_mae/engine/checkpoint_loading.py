# Copyright (c) um-mae contributors. All rights reserved.
"""Import this module to make mmengine read checkpoints safely.

Configs declare it in ``custom_imports``
(``configs/_base_/um_mae_runtime.py`` does): mmengine then reads local
checkpoints (``--resume``, ``load_from``, ``tools/test.py``) with
:func:`um_mae.models.converters.read_checkpoint` - ``weights_only=True``
plus an allow-list of what runner checkpoints hold - instead of its
default ``torch.load`` call, which torch >= 2.6 refuses for runner
checkpoints. See :func:`um_mae.engine.checkpoint.register_checkpoint_loader`.
"""
from .checkpoint import register_checkpoint_loader

register_checkpoint_loader()
