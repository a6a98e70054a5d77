# Copyright (c) um-mae contributors. All rights reserved.
"""Files that are never half-written.

:func:`atomic_write` writes to a temporary file in the destination folder,
fsyncs it and renames it over the destination (atomic on POSIX): a process
killed while writing leaves the previous file, never a truncated one. The
checkpoint hook (:class:`~um_mae.engine.AtomicCheckpointHook`) and the
tools' ``--out`` files use it.
"""
import glob
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import List, Union

__all__ = [
    'atomic_write', 'atomic_torch_save', 'remove_stale_temporaries',
    'TMP_SUFFIX'
]

#: suffix of the temporary files; a leftover one is a write that was killed
TMP_SUFFIX = '.tmp'


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` through a temporary file and rename.

    The file gets the mode a plain ``open(filepath, 'wb')`` would give it
    (``0o666`` less the umask).

    Args:
        data (bytes): What to write.
        filepath (str | Path): Destination; its folder is created.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(filepath)}.', suffix=TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj, filepath: Union[str, Path]) -> None:
    """``torch.save`` through a temporary file and a rename.

    A failed write (a full disk, a kill) leaves the previous file as it
    was. An ``OSError`` without a file name (``ENOSPC`` from a write) is
    raised again naming ``filepath``.

    Args:
        obj: What to save.
        filepath (str | Path): Destination; its folder must exist.
    """
    import torch
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f'.{osp.basename(filepath)}.',
            suffix=TMP_SUFFIX,
            dir=folder)
    except OSError as e:
        raise OSError(e.errno, e.strerror, filepath) from e
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filepath)
    except OSError as e:
        raise OSError(e.errno, e.strerror, e.filename or filepath) from e
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete the temporary files of writes that were killed.

    Args:
        folder (str): A folder :func:`atomic_write` wrote into.

    Returns:
        list[str]: The removed paths.
    """
    stale = sorted(glob.glob(osp.join(folder, f'.*{TMP_SUFFIX}')))
    for path in stale:
        os.remove(path)
    return stale
