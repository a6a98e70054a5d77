# Copyright (c) um-mae contributors. All rights reserved.
"""What a run writes into its work dir: one run per work dir (a second run
stops naming the running one, a fresh run does not overwrite an earlier
run's checkpoints, ``--resume`` continues it); checkpoint temporaries have
unique names; ``last_checkpoint`` never names a deleted file; a full disk
names the file, leaves no temporary and claims nothing it did not keep.

``tools/train.py`` runs in this process (its ``main``) on the shipped MAE
demo config, one iteration per epoch.
"""
import errno
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from um_mae.toolkit.demo_data import make_pretrain_images

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAE_DEMO = 'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py'

# the lock module alone (no torch import: starts in a fraction of a second)
HOLD_LOCK = '''
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location('lock', sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
lock = module.WorkDirLock(sys.argv[1])
lock.acquire()
print('locked', flush=True)
time.sleep(120)
'''


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not an Exception)."""


def _train(work, images, *extra, epochs=1, options=()):
    path = osp.join(REPO, 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('train_tool_lock', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([
        MAE_DEMO, '--work-dir', work, '--data-root', images, *extra,
        '--cfg-options', f'train_cfg.max_epochs={epochs}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', *options
    ])


def test_work_dir_writes(tmp_path, capsys, monkeypatch):
    from mmengine.fileio import LocalBackend
    monkeypatch.chdir(REPO)
    images, work = str(tmp_path / 'images'), str(tmp_path / 'work')
    make_pretrain_images(images, num_images=8, size=128)

    # a running process holds the work dir: the run stops, naming it
    module = osp.join(REPO, 'um_mae', 'engine', 'work_dir_lock.py')
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, work, module],
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(SystemExit) as e:
            _train(work, images)
        err = capsys.readouterr().err
        assert e.value.code == 1, err[-2000:]
        assert f'is in use by another training run (pid {holder.pid}' in err
        assert '-c' in err and 'choose another --work-dir' in err
        assert not osp.exists(osp.join(work, 'epoch_1.pth'))
    finally:
        holder.kill()
        holder.wait()

    # once it has ended the work dir is free; temporaries are unique
    written = []
    put = LocalBackend.put

    def record(self, obj, filepath):
        written.append(str(filepath))
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', record)
    _train(work, images)
    tmp = [osp.basename(p) for p in written if p.endswith('.tmp')]
    assert len(tmp) == 1 and re.fullmatch(
        r'\.epoch_1\.pth\.\d+-[0-9a-f]{8}\.tmp', tmp[0]), written
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))

    # a second fresh run would overwrite the first one's checkpoints
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _train(work, images, epochs=2)
    err = capsys.readouterr().err
    assert e.value.code == 1, err[-2000:]
    assert 'holds the checkpoints of an earlier run' in err
    assert '--resume' in err and 'epoch_1.pth' in err
    # --resume continues it; killed right after deleting the old
    # checkpoint (max_keep_ckpts=1), last_checkpoint names the new one
    remove = os.remove

    def remove_then_die(path, *args, **kwargs):
        remove(path, *args, **kwargs)
        if path.endswith('epoch_1.pth'):
            raise _Killed

    monkeypatch.setattr(os, 'remove', remove_then_die)
    with pytest.raises(_Killed):
        _train(
            work,
            images,
            '--resume',
            epochs=2,
            options=['default_hooks.checkpoint.max_keep_ckpts=1'])
    monkeypatch.setattr(os, 'remove', remove)
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, 'epoch_2.pth')
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    assert not osp.exists(osp.join(work, 'epoch_1.pth'))
    tmp2 = [osp.basename(p) for p in written if p.endswith('.tmp')][1]
    assert tmp2.startswith('.epoch_2.pth.') and tmp2 != tmp[0]

    # a full disk: one line naming the file, no temporary left, no claim
    # of checkpoints that were never written
    def disk_full(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalBackend, 'put', disk_full)
    full = str(tmp_path / 'full')
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _train(full, images)
    err = capsys.readouterr().err
    assert e.value.code == 1, err[-2000:]
    line = err.splitlines()[0]
    assert line.startswith(f'error: cannot use {full}/epoch_1.pth: the '
                           'disk is full'), err[-2000:]
    assert 'no checkpoint of this run was written' in line
    assert 'intact' not in err
    assert not [n for n in os.listdir(full) if n.endswith('.tmp')]
