# Copyright (c) um-mae contributors. All rights reserved.
"""Checkpoints that are never half-written.

mmengine writes a checkpoint with ``LocalBackend.put``, i.e. straight into
the final file: a job killed while saving leaves a truncated ``epoch_N.pth``
that ``last_checkpoint`` may already point at. We replace the ``local``
backend with one that writes to a temporary file in the same folder, fsyncs
it and renames it over the target (atomic on POSIX), so the previous
checkpoint stays loadable until the new one is complete.
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

import mmengine
from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'atomic_write']


def atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` through a temporary file and rename.

    Args:
        data (bytes): What to write.
        filepath (str | Path): Destination; its folder is created.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    mmengine.mkdir_or_exist(folder)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


@register_backend('local', force=True, prefixes='')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)
