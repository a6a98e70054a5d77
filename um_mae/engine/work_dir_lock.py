# Copyright (c) um-mae contributors. All rights reserved.
"""One training run per work dir.

Two runs writing into one work dir overwrite each other's checkpoints and
``last_checkpoint``. :class:`WorkDirLock` takes an exclusive POSIX record
lock (``lockf``) on ``<work_dir>/.um_mae.lock`` (held by the main process
until it exits; the kernel releases it when the process dies, so a killed
run leaves no stale lock, and processes it forks, such as data-loader
workers, do not inherit it, so orphaned workers of a killed run do not
hold it either) and writes who holds it into the file. A second run in the
same work dir stops with one line naming the running one.

A run that neither resumes nor loads ``last_checkpoint`` also stops when
the work dir holds the checkpoints of an earlier run (``last_checkpoint``):
it would overwrite them. ``--resume`` continues that run instead. Within
one process (a notebook) a new run takes over the lock of an earlier run
that ended with an exception.
"""
import fcntl
import os
import os.path as osp
import sys
import time
from typing import Dict, Optional

__all__ = ['LOCK_NAME', 'WorkDirInUseError', 'WorkDirLock']

#: the lock file inside the work dir
LOCK_NAME = '.um_mae.lock'


#: locks this process holds, by real path: a run that ended with an
#: exception in this process (a notebook, a test) holds its lock until its
#: runner is collected; the next run of the same process takes it over
_HELD: Dict[str, 'WorkDirLock'] = {}


class WorkDirInUseError(ValueError):
    """The work dir belongs to another run; the message names it."""


class WorkDirLock:
    """An exclusive lock on a work dir for the lifetime of a run.

    Args:
        work_dir (str): The run's work dir (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock, or raise naming the run that holds it.

        Raises:
            WorkDirInUseError: Another live process holds the lock.
        """
        if self._fd is not None:
            return
        os.makedirs(self.work_dir, exist_ok=True)
        earlier = _HELD.get(osp.realpath(self.path))
        if earlier is not None:
            earlier.release()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode(errors='replace').strip()
            os.close(fd)
            raise WorkDirInUseError(
                f'work dir {self.work_dir} is in use by another training run'
                f' ({holder or "holder unknown"}); wait for it to end or '
                'stop it, or choose another --work-dir') from None
        command = ' '.join([osp.basename(sys.executable)] + sys.argv)
        started = time.strftime('%Y-%m-%d %H:%M:%S')
        os.ftruncate(fd, 0)
        os.write(
            fd, f'pid {os.getpid()}, started {started}: '
            f'{command}'.encode())
        self._fd = fd
        _HELD[osp.realpath(self.path)] = self

    def __del__(self) -> None:
        self.release()

    def release(self) -> None:
        """Release the lock (also released when the process exits)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if _HELD.get(osp.realpath(self.path)) is self:
            del _HELD[osp.realpath(self.path)]
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the lock
