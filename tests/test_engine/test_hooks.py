# Copyright (c) um-mae contributors. All rights reserved.
import os

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

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
