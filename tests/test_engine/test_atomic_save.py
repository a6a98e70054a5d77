# Copyright (c) um-mae contributors. All rights reserved.
import os
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

import um_mae  # noqa: F401
from um_mae.engine import AtomicLocalBackend


def test_local_backend_is_atomic():
    assert isinstance(get_file_backend('/tmp/some.pth'), AtomicLocalBackend)


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, path)

    real_fsync = os.fsync

    def crash(fd):  # the process "dies" after writing, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, path)
    monkeypatch.setattr(os, 'fsync', real_fsync)

    state = torch.load(path, weights_only=True)
    assert torch.equal(state['state_dict']['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['epoch_1.pth'], 'temporary file left'


CHILD = r'''
import resource, signal, sys, torch
import um_mae
from mmengine.runner.checkpoint import save_checkpoint
path = sys.argv[1]
save_checkpoint({'v': torch.ones(1)}, path)
# The kernel kills this process (SIGXFSZ) in the middle of the next write,
# like a job killed while saving.
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
save_checkpoint({'v': torch.randn(4_000_000)}, path)
'''


def test_kill_during_save_leaves_loadable_file(tmp_path):
    path = str(tmp_path / 'latest.pth')
    proc = subprocess.run([sys.executable, '-c', CHILD, path],
                          capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr
    state = torch.load(path, weights_only=True)
    assert torch.equal(state['v'], torch.ones(1))
