# Copyright (c) um-mae contributors. All rights reserved.
"""WarmupHalfCosineLR against the official lr formula (util/lr_sched.py).

The reference below is written from the formula, independently of the
scheduler: at the fractional epoch ``t = it / iters_per_epoch + epoch``
the lr is ``peak * t / warmup`` during the warm-up, then ``min + (peak -
min) * 0.5 * (1 + cos(pi * (t - warmup) / (epochs - warmup)))``; each
group's lr is that times its ``lr_scale``; with accumulation the lr is set
at the first micro-batch of a window (``it % accum == 0``).
"""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
from conftest import load_config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch import nn

import um_mae  # noqa: F401
from um_mae.engine import WarmupHalfCosineLR
from um_mae.models.utils.backbone_contract import layer_depth

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECIPES = sorted(
    osp.relpath(p, REPO) for folder in ('pretrain', 'finetune')
    for p in glob.glob(
        osp.join(REPO, 'configs', folder, '**', '*.py'), recursive=True)
    if '_base_' not in p and 'demo' not in osp.basename(p))


def official_lr(epoch, peak, warmup, epochs, min_lr):
    if epoch < warmup:
        return peak * epoch / warmup
    return min_lr + (peak - min_lr) * 0.5 * (1. + math.cos(math.pi *
                                                           (epoch - warmup) /
                                                           (epochs - warmup)))


class _Backbone(nn.Module):
    """Two blocks with layer depths, for the layer-decay constructor."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Linear(4, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])

    def get_layer_depth(self, param_name, prefix=''):
        return layer_depth(param_name, prefix, [2])


class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = _Backbone()
        self.head = nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = self.backbone.patch_embed(inputs)
        for layer in self.backbone.layers:
            x = layer(x)
        return dict(loss=self.head(x).pow(2).mean())


class _ToyData(torch.utils.data.Dataset):

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return dict(inputs=torch.full((4, ), float(i % 7) / 7))


class _RecordUpdates(Hook):
    """Records (iteration, lr of every group) at each optimizer step."""

    def __init__(self):
        self.updates = []

    def before_train(self, runner):
        optimizer = runner.optim_wrapper.optimizer
        step = optimizer.step

        def recording_step(*args, **kwargs):
            self.updates.append(
                (runner.iter, [g['lr'] for g in optimizer.param_groups],
                 [g.get('lr_scale', 1.) for g in optimizer.param_groups]))
            return step(*args, **kwargs)

        optimizer.step = recording_step


def _shrunk_runner(recipe_cfg, work_dir, epochs, iters_per_epoch, **overrides):
    """A Runner with the recipe's optimizer wrapper and schedule (the
    epochs and iterations per epoch shrunk, the warm-up shrunk with the
    epochs) on a toy model; AMP's wrapper needs CUDA, its accumulation is
    OptimWrapper's."""
    optim_wrapper = copy.deepcopy(recipe_cfg.optim_wrapper.to_dict())
    if optim_wrapper['type'] == 'AmpOptimWrapper':
        optim_wrapper['type'] = 'OptimWrapper'
        optim_wrapper.pop('loss_scale', None)
    accum = optim_wrapper.get('accumulative_counts', 1)
    scheduler = copy.deepcopy(recipe_cfg.param_scheduler.to_dict())
    full_epochs = recipe_cfg.train_cfg.max_epochs
    scheduler['warmup_epochs'] *= epochs / full_epochs
    hook = _RecordUpdates()
    _shrunk_runner.count += 1
    runner = Runner(
        model=_ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_ToyData(iters_per_epoch),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=optim_wrapper,
        param_scheduler=scheduler,
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=10**6),
            checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[hook],
        default_scope='mmpretrain',
        experiment_name=f'schedule_{_shrunk_runner.count}',
        **overrides)
    return runner, hook, scheduler, accum


_shrunk_runner.count = 0


def _check_updates(updates, scheduler, epochs, iters_per_epoch, accum, peak):
    """Every update's lr is the official formula at its window start."""
    assert updates
    total = epochs * iters_per_epoch
    expected_iters = [
        min(w + accum, total) - 1 for w in range(0, total, accum)
    ]
    assert [it for it, _, _ in updates] == expected_iters[-len(updates):]
    for it, lrs, scales in updates:
        start = it - it % accum
        epoch = start / iters_per_epoch
        for lr, scale in zip(lrs, scales):
            expected = scale * official_lr(epoch, peak,
                                           scheduler['warmup_epochs'], epochs,
                                           scheduler.get('eta_min', 0.))
            assert abs(lr - expected) <= 1e-6 * peak, (it, lr, expected)


_RUNS = {}


def _run_once(cfg, work_dir, epochs, iters):
    """Run a shrunk schedule once per distinct (optimizer wrapper,
    schedule): recipes that share them share the run."""
    key = repr((cfg.optim_wrapper.to_dict(), cfg.param_scheduler.to_dict(),
                cfg.train_cfg.max_epochs, epochs, iters))
    if key not in _RUNS:
        runner, hook, scheduler, accum = _shrunk_runner(
            cfg, work_dir, epochs, iters)
        runner.train()
        _RUNS[key] = hook.updates, scheduler, accum
    return _RUNS[key]


@pytest.mark.parametrize('recipe', RECIPES)
def test_every_update_follows_the_official_formula(recipe, tmp_path):
    """The shipped recipe's schedule and accumulation over a whole (shrunk)
    run: 2 epochs of 10 windows, the warm-up shrunk with the epochs."""
    cfg = load_config(recipe)
    assert cfg.param_scheduler['type'] == 'WarmupHalfCosineLR'
    accum = cfg.optim_wrapper.get('accumulative_counts', 1)
    epochs, iters = 2, 10 * accum
    updates, scheduler, accum = _run_once(cfg, str(tmp_path), epochs, iters)
    assert len(updates) == epochs * iters // accum
    peak = cfg.optim_wrapper.optimizer.lr
    _check_updates(updates, scheduler, epochs, iters, accum, peak)
    # warm-up from 0: the first update has lr 0
    assert updates[0][1][0] == 0.
    if 'LayerDecay' in cfg.optim_wrapper.get('constructor', ''):
        scales = set(updates[0][2])
        assert len(scales) > 1, 'no layer-decay groups were built'


def test_resume_restores_the_schedule(tmp_path):
    """A run resumed from its epoch-1 checkpoint updates with the same lrs
    as the uninterrupted run (state_dict of the scheduler)."""
    cfg = load_config('configs/pretrain/ummae/ummae_swin-large_8xb64-'
                      'accum8-amp-coslr-800e_in1k-256px.py')
    iters = 3 * 8
    full, full_hook, _, _ = _shrunk_runner(cfg, str(tmp_path / 'a'), 3, iters)
    full.train()
    resumed, hook, _, _ = _shrunk_runner(
        cfg,
        str(tmp_path / 'a'),
        3,
        iters,
        load_from=str(tmp_path / 'a' / 'epoch_1.pth'),
        resume=True)
    resumed.train()
    assert [u[0] for u in hook.updates
            ] == [u[0] for u in full_hook.updates if u[0] >= iters]
    for (_, lrs, _), (_, ref,
                      _) in zip(hook.updates,
                                full_hook.updates[-len(hook.updates):]):
        assert lrs == pytest.approx(ref, rel=0, abs=1e-12)


def test_windows_not_aligned_with_epochs(tmp_path):
    """With iterations per epoch not a multiple of the accumulation, an
    update uses the formula at the first micro-batch of its window, which
    may lie in the previous epoch; the last window is cut at the end."""
    cfg = load_config('configs/pretrain/ummae/ummae_pvt-small_8xb128-'
                      'accum4-amp-coslr-200e_in1k-256px.py')
    epochs, iters = 3, 4 * 5 + 3
    runner, hook, scheduler, accum = _shrunk_runner(cfg, str(tmp_path), epochs,
                                                    iters)
    runner.train()
    _check_updates(hook.updates, scheduler, epochs, iters, accum,
                   cfg.optim_wrapper.optimizer.lr)


def _direct_scheduler(accum,
                      epoch_length,
                      warmup,
                      epochs,
                      eta_min=0.,
                      scales=(1., .5)):
    params = [nn.Parameter(torch.zeros(1)) for _ in scales]
    optimizer = torch.optim.SGD([
        dict(params=[p], lr=1e-3 * s, lr_scale=s)
        for p, s in zip(params, scales)
    ],
                                lr=1e-3)
    wrapper = OptimWrapper(optimizer, accumulative_counts=accum)
    return WarmupHalfCosineLR.build_iter_from_epoch(
        wrapper,
        warmup_epochs=warmup,
        eta_min=eta_min,
        begin=0,
        end=epochs,
        epoch_length=epoch_length), optimizer


@pytest.mark.parametrize('accum', [1, 3])
def test_formula_every_iteration(accum):
    """Every iteration's lr (no runner), with layer-decay scales and a
    non-zero min_lr: constant within a window, the formula at its start."""
    scheduler, optimizer = _direct_scheduler(accum, 7, 2, 5, eta_min=1e-5)
    for it in range(5 * 7):
        start = it - it % accum
        for group in optimizer.param_groups:
            expected = group['lr_scale'] * official_lr(start / 7, 1e-3, 2, 5,
                                                       1e-5)
            assert group['lr'] == pytest.approx(expected, abs=1e-12)
        optimizer.step()
        scheduler.step()
    # the peak is reached exactly at the end of the warm-up (epoch 2)
    assert official_lr(2., 1e-3, 2, 5, 1e-5) == pytest.approx(1e-3)


def test_run_shorter_than_the_warm_up():
    """`train_cfg.max_epochs=1` on a 10-epoch warm-up (a smoke run): the lr
    stays on the warm-up line of the full recipe."""
    scheduler, optimizer = _direct_scheduler(1, 4, 10, 1, scales=(1., ))
    for it in range(4):
        assert optimizer.param_groups[0]['lr'] == pytest.approx(
            official_lr(it / 4, 1e-3, 10, 200, 0.), abs=1e-15)
        optimizer.step()
        scheduler.step()


def test_state_dict_round_trip():
    a, _ = _direct_scheduler(1, 5, 1, 4)
    for _ in range(7):
        a.step()
    b, opt_b = _direct_scheduler(1, 5, 1, 4)
    b.load_state_dict(a.state_dict())
    b.step()
    a.step()
    assert a.get_last_value() == b.get_last_value()


@pytest.mark.parametrize('kwargs,match', [
    (dict(by_epoch=True, epoch_length=5), 'convert_to_iter_based=True'),
    (dict(by_epoch=False, epoch_length=None), 'convert_to_iter_based=True'),
    (dict(epoch_length=5, warmup_epochs=-1), 'must be >= 0'),
])
def test_errors_name_the_fix(kwargs, match):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    args = dict(warmup_epochs=1, begin=0, end=20)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        WarmupHalfCosineLR(optimizer, **args)
