# Copyright (c) um-mae contributors. All rights reserved.
"""Checkpoints of a shipped config survive a kill in the middle of a save.

The training runs as a user starts it (``tools/train.py`` on the shipped
MAE demo config with ``max_keep_ckpts=1``); a ``sitecustomize`` module
makes the second checkpoint write stop half-way with SIGKILL, like a job
killed while saving.
"""
import os
import os.path as osp
import signal
import stat
import subprocess
import sys

import pytest
import torch
from conftest import run_tool

from um_mae.toolkit.demo_data import make_pretrain_images

# a training of the demo config killed and resumed (well over 10 s here)
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAE_DEMO = osp.join(REPO, 'configs', 'pretrain', 'mae',
                    'mae_vit-tiny-p16_1xb8-10e_demo-128px.py')

KILL_ON_SECOND_SAVE = r'''
import os, signal
from mmengine.fileio import LocalBackend
_put, _calls = LocalBackend.put, []

def put(self, obj, filepath):
    if str(filepath).endswith('.pth') or '.pth.' in str(filepath):
        _calls.append(filepath)
        if len(_calls) == 2:  # half of the second checkpoint, then die
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return _put(self, obj, filepath)

LocalBackend.put = put
'''


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('images')
    make_pretrain_images(str(root), num_images=8, size=128)
    return str(root)


def options(data_root):
    return [
        '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={data_root}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=2',
        'default_hooks.checkpoint.max_keep_ckpts=1'
    ]


def train_killed_on_second_save(work_dir, data_root):
    """The training in a process of its own that ``sitecustomize`` kills."""
    site = osp.join(work_dir + '_site')
    os.makedirs(site, exist_ok=True)
    with open(osp.join(site, 'sitecustomize.py'), 'w') as f:
        f.write(KILL_ON_SECOND_SAVE)
    env = dict(os.environ, PYTHONWARNINGS='ignore',
               PYTHONPATH=os.pathsep.join([site, REPO]))
    return subprocess.run(
        [
            sys.executable, 'tools/train.py', MAE_DEMO, '--work-dir',
            work_dir, *options(data_root)
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)


def test_kill_during_save_keeps_last_checkpoint(data_root, tmp_path):
    work = str(tmp_path / 'work')
    proc = train_killed_on_second_save(work, data_root)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # the first checkpoint is still there, whole, and named by
    # last_checkpoint; the half-written second one is a temporary file
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        last = f.read()
    assert last == osp.join(work, 'epoch_1.pth')
    state = torch.load(last, weights_only=False)
    assert state['meta']['epoch'] == 1
    assert [n for n in os.listdir(work) if n.endswith('.tmp')]

    # --resume continues from it and removes the leftover (a run forked
    # from the tests' warm interpreter, conftest.run_tool)
    rc, out = run_tool('tools/train.py', MAE_DEMO, '--work-dir', work,
                       '--resume', *options(data_root), timeout=600)
    assert rc == 0, out[-3000:]
    assert not [n for n in os.listdir(work) if n.endswith('.tmp')]
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == [
        'epoch_2.pth'
    ]  # max_keep_ckpts=1: epoch_1.pth removed after epoch_2.pth was saved
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, 'epoch_2.pth')
    old = os.umask(0)
    os.umask(old)
    for name in ('epoch_2.pth', 'last_checkpoint'):
        mode = stat.S_IMODE(os.stat(osp.join(work, name)).st_mode)
        assert mode == 0o666 & ~old, (name, oct(mode))
