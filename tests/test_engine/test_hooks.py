# Copyright (c) um-mae contributors. All rights reserved.
import os
import random

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

import um_mae  # noqa: F401
from um_mae.engine import FiniteLossHook, NonFiniteLossError


class ToyModel(BaseModel):
    """Loss becomes NaN from the iteration ``nan_at`` (1-based) on."""

    def __init__(self, nan_at):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        loss = (self.w * inputs.float()).pow(2).mean()
        if self.calls >= self.nan_at:
            loss = loss * float('nan')
        return dict(loss=loss)


def build_runner(tmp_path, nan_at):
    data = [dict(inputs=torch.ones(2)) for _ in range(8)]
    return Runner(
        model=ToyModel(nan_at),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=6),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type=FiniteLossHook)],
        default_scope='mmpretrain',
        experiment_name=f'finite_{nan_at}_{os.getpid()}')


def test_nan_loss_stops_before_checkpoint(tmp_path):
    runner = build_runner(tmp_path, nan_at=3)
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    assert 'at iteration 3' in str(e.value)
    assert 'clip_grad' in str(e.value)
    assert os.path.exists(tmp_path / 'iter_2.pth')
    assert not os.path.exists(tmp_path / 'iter_3.pth')


def test_finite_training_runs_through(tmp_path):
    runner = build_runner(tmp_path, nan_at=100)
    runner.train()
    assert os.path.exists(tmp_path / 'iter_6.pth')


def test_bad_interval():
    with pytest.raises(ValueError, match='interval must be >= 1'):
        FiniteLossHook(interval=0)


# -- the hooks as the shipped configs declare them ---------------------------
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
UMMAE_DEMO = os.path.join(REPO, 'configs', 'pretrain', 'ummae',
                          'ummae_pvt-demo_1xb8-10e_demo-128px.py')


@pytest.fixture(scope='module')
def demo_images(tmp_path_factory):
    from um_mae.toolkit.demo_data import make_pretrain_images
    root = tmp_path_factory.mktemp('images')
    make_pretrain_images(str(root), num_images=16, size=128)
    return str(root)


def _demo_cfg(data_root, work_dir, **options):
    from mmengine.config import Config
    cfg = Config.fromfile(UMMAE_DEMO)
    cfg.merge_from_dict({
        'train_dataloader.dataset.dataset.data_root': data_root,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        **options
    })
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'demo_{os.getpid()}_{len(os.listdir(work_dir))}'
    return cfg


@pytest.mark.slow
def test_shipped_config_stops_at_nan_under_runner_from_cfg(
        demo_images, tmp_path):
    """No launcher involved: the config itself declares the NaN stop."""
    cfg = _demo_cfg(demo_images, tmp_path, **{
        'optim_wrapper.optimizer.lr': 1e6,
        'optim_wrapper.clip_grad': None,
        'train_cfg.max_epochs': 3
    })
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteLossError, match='non-finite loss'):
        runner.train()
    for name in os.listdir(tmp_path):
        if name.endswith('.pth'):  # whatever was saved is finite
            state = torch.load(tmp_path / name, weights_only=False)
            for key, value in state['state_dict'].items():
                assert torch.isfinite(value).all(), (name, key)


class _RNGSpyHook(Hook):
    """Records the generators right after the checkpoint was loaded."""

    def after_load_checkpoint(self, runner, checkpoint):
        self.seen = dict(
            torch=torch.get_rng_state(),
            numpy=np.random.get_state(),
            python=random.getstate())


@pytest.mark.slow
def test_shipped_config_saves_and_restores_rng_state(demo_images, tmp_path):
    """``--resume`` gives back the generators saved with the checkpoint.

    They are read right after loading (by a hook that runs after
    ``RNGStateHook``) in a new runner, after they were put elsewhere.
    Planted bugs caught: numpy's state not restored; the restore skipped on
    resume (``_resume`` test inverted)."""
    cfg = _demo_cfg(demo_images, tmp_path, **{'train_cfg.max_epochs': 1})
    Runner.from_cfg(cfg).train()
    ckpt = str(tmp_path / 'epoch_1.pth')
    saved = torch.load(ckpt, weights_only=False)['rng_state']
    resumed = Runner.from_cfg(
        _demo_cfg(demo_images, tmp_path, resume=True, load_from=ckpt,
                  **{'train_cfg.max_epochs': 1}))
    # put every generator elsewhere (the run's seeding may not have moved
    # one that the epoch did not draw from)
    torch.manual_seed(12345)
    np.random.seed(12345)
    random.seed(12345)
    assert not torch.equal(torch.get_rng_state(), saved['torch'])
    assert random.getstate() != saved['python']
    assert not np.array_equal(np.random.get_state()[1], saved['numpy'][1])
    spy = _RNGSpyHook()
    resumed.register_hook(spy, priority='LOWEST')
    resumed.train()
    assert torch.equal(spy.seen['torch'], saved['torch'])
    assert spy.seen['python'] == saved['python']
    assert len(spy.seen['numpy']) == len(saved['numpy'])
    for got, want in zip(spy.seen['numpy'], saved['numpy']):
        assert np.array_equal(got, want)


def test_launcher_warns_when_hooks_are_replaced(tmp_path):
    from mmengine.config import Config

    from um_mae.toolkit.cli import check_runtime_hooks
    derived = tmp_path / 'derived.py'
    derived.write_text(f"_base_ = ['{UMMAE_DEMO}']\n"
                       "custom_hooks = [dict(type='EMAHook')]\n"
                       "default_hooks = dict(checkpoint=dict("
                       "_delete_=True, type='CheckpointHook'))\n")
    missing = check_runtime_hooks(Config.fromfile(str(derived)))
    assert missing == [
        'FiniteLossHook', 'RNGStateHook', 'PretrainedHook',
        'RankMeanLossHook', 'DataSummaryHook', 'TrainingNoticesHook',
        'AtomicCheckpointHook'
    ]
    assert check_runtime_hooks(Config.fromfile(UMMAE_DEMO)) == []


def test_pretrained_hook_refuses_a_checkpoint_nothing_loads():
    """``pretrained`` set but no module has a checkpoint initializer: an
    error naming the value and the fix, instead of a silently random model
    (planted: the branch returns); ``pretrained = None`` there is fine."""
    from types import SimpleNamespace

    from mmengine.config import Config

    from um_mae.engine.hooks import PretrainedHook
    model = ToyModel(nan_at=100)
    runner = SimpleNamespace(
        cfg=Config(dict(pretrained='work_dirs/pre/epoch_1.pth')),
        model=model)
    with pytest.raises(
            ValueError,
            match=r"pretrained='work_dirs/pre/epoch_1\.pth' but no module "
            r"of ToyModel loads a checkpoint; add init_cfg=dict\("
            r"type='CheckedPretrained'"):
        PretrainedHook().before_run(runner)
    runner.cfg = Config(dict(pretrained=None))
    PretrainedHook().before_run(runner)
    assert model.init_cfg is None
