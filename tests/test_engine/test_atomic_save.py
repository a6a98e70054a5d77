# Copyright (c) um-mae contributors. All rights reserved.
import os
import signal
import stat
import subprocess
import sys

import pytest

from um_mae.engine import atomic_write, remove_stale_temporaries


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'last_checkpoint'
    atomic_write(b'epoch_1.pth', path)

    def crash(fd):  # the process "dies" after writing, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(b'epoch_2.pth', path)
    assert path.read_bytes() == b'epoch_1.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint'], 'temporary left'


def test_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(b'x', tmp_path / 'a.json')
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'a.json').st_mode) == 0o644


CHILD = r'''
import resource, signal, sys
from um_mae.engine import atomic_write
path = sys.argv[1]
atomic_write(b'1' * 10, path)
# The kernel kills this process (SIGXFSZ) in the middle of the next write,
# like a job killed while saving.
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
atomic_write(b'2' * (4 << 20), path)
'''


def test_kill_during_write_leaves_previous_file(tmp_path):
    path = tmp_path / 'latest.pth'
    proc = subprocess.run([sys.executable, '-c', CHILD,
                           str(path)],
                          capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr
    assert path.read_bytes() == b'1' * 10
    stale = remove_stale_temporaries(str(tmp_path))
    assert len(stale) == 1 and stale[0].endswith('.tmp')
    assert os.listdir(tmp_path) == ['latest.pth']
