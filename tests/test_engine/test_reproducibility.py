# Copyright (c) um-mae contributors. All rights reserved.
"""Distributed equivalence and deterministic resume of the UM-MAE demo.

* 2 CPU processes (gloo) x batch 4 follow the same loss trajectory and reach
  the same weights as 1 process x batch 8: same data order and masks
  (EpochStampedSampler + PerSampleSeedDataset), gradients averaged by DDP.
  Every rank logs the mean loss over the ranks.
* Training 2 epochs straight equals training, killing the process after
  the first epoch's checkpoint, and resuming, bit for bit, for each shipped
  pre-training algorithm (UM-MAE, SimMIM, MAE).
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_tool

from um_mae.toolkit.demo_data import make_pretrain_images

# trainings of a demo config, in one and two processes (over 10 s each)
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# the UM-MAE PVT demo config plus a hook recording every rank's losses
DEMO = osp.join(REPO, 'tests', 'data', 'configs',
                'ummae_pvt-demo_loss-recorder.py')
PLUGINS = osp.join(REPO, 'tests', 'data', 'plugins')
# float32 sums in another order: the trajectories agree to ~1e-6
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('images')
    make_pretrain_images(str(root), num_images=24, size=128)
    return str(root)


def options(data_root, batch_size, max_epochs):
    return [
        '--cfg-options', f'train_dataloader.dataset.dataset.data_root='
        f'{data_root}', f'train_dataloader.batch_size={batch_size}',
        'train_dataloader.num_workers=1', f'train_cfg.max_epochs={max_epochs}',
        'default_hooks.logger.interval=1'
    ]


def env():
    # PYTHON: dist_train.sh launches torchrun with the running interpreter,
    # not the first python3 on PATH (the suite may run outside its venv)
    return dict(
        os.environ,
        PYTHON=sys.executable,
        PYTHONWARNINGS='ignore',
        PYTHONPATH=os.pathsep.join([PLUGINS, REPO]),
        OMP_NUM_THREADS='1')


def train(work_dir, opts, nproc=1, resume=False):
    if nproc == 1:
        cmd = [sys.executable, 'tools/train.py', DEMO]
    else:
        cmd = ['bash', 'tools/dist_train.sh', DEMO, str(nproc)]
    cmd += ['--work-dir', work_dir, *opts] + (['--resume'] if resume else [])
    proc = subprocess.run(
        cmd, cwd=REPO, env=dict(env(), PORT='29533'), capture_output=True,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def losses(work_dir, rank=0):
    with open(osp.join(work_dir, f'losses_rank{rank}.jsonl')) as f:
        rows = [json.loads(line) for line in f]
    return {r['iter']: r['loss'] for r in rows}


def weights(path):
    return torch.load(path, weights_only=False)['state_dict']


def assert_same_weights(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k, **tol)


def logged_losses(work_dir):
    """The losses the run logged (what its curves show)."""
    import glob
    path, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return {r['iter']: r['loss'] for r in rows if 'loss' in r}


def test_two_processes_equal_one_with_double_batch(data_root, tmp_path):
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    train(one, options(data_root, batch_size=8, max_epochs=1))
    train(two, options(data_root, batch_size=4, max_epochs=1), nproc=2)
    l1 = losses(one)
    # every rank sees the mean over the ranks (RankMeanLossHook)
    assert losses(two, 0) == losses(two, 1)
    l2 = losses(two, 0)
    assert sorted(l1) == sorted(l2) == [1, 2, 3]
    for i in l1:
        assert l1[i] == pytest.approx(l2[i], rel=RTOL, abs=ATOL), i
    # and so does the log: the curves of 1 x 2b and 2 x b agree
    log1, log2 = logged_losses(one), logged_losses(two)
    assert sorted(log1) == sorted(log2) == [1, 2, 3]
    for i in log1:
        assert log1[i] == pytest.approx(log2[i], rel=RTOL, abs=ATOL), i
    assert_same_weights(
        weights(osp.join(one, 'epoch_1.pth')),
        weights(osp.join(two, 'epoch_1.pth')),
        rtol=RTOL,
        atol=ATOL)


SHIPPED_DEMOS = {
    'ummae': 'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py',
    'simmim': 'configs/pretrain/simmim/simmim_pvt-demo_1xb8-10e_demo-128px.py',
    # MAE draws its masks inside the model, from the global torch generator
    'mae': 'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py',
}


@pytest.mark.parametrize('algorithm', sorted(SHIPPED_DEMOS))
def test_resume_after_kill_equals_straight_run(algorithm, data_root,
                                               tmp_path):
    """The shipped demo config as it is (2 persistent loader workers)."""
    config = osp.join(REPO, SHIPPED_DEMOS[algorithm])
    straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
    opts = [
        '--cfg-options', f'train_dataloader.dataset.dataset.data_root='
        f'{data_root}', 'train_cfg.max_epochs=2'
    ]
    # the runs that end by themselves fork from the tests' warm interpreter
    # (conftest.run_tool); the one that is killed is a process of its own
    one_thread = dict(OMP_NUM_THREADS='1')
    rc, out = run_tool('tools/train.py', config, '--work-dir', straight,
                       *opts, env=one_thread, timeout=900)
    assert rc == 0, out[-3000:]

    # start the same run and kill it once the first checkpoint is complete
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', config, '--work-dir', killed,
         *opts],
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    last = osp.join(killed, 'last_checkpoint')
    deadline = time.time() + 600
    while not osp.exists(last) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not osp.exists(osp.join(killed, 'epoch_2.pth')), \
        'the run finished before it was killed'

    rc, out = run_tool('tools/train.py', config, '--work-dir', killed, *opts,
                       '--resume', env=one_thread, timeout=900)
    assert rc == 0, out[-3000:]
    assert_same_weights(
        weights(osp.join(straight, 'epoch_2.pth')),
        weights(osp.join(killed, 'epoch_2.pth')),
        rtol=0,
        atol=0)
