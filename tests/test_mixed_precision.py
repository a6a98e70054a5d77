# Copyright (c) um-mae contributors. All rights reserved.
"""Every shipped config trains a step in mixed precision (CPU autocast).

For each config under ``configs/`` (a new one is picked up by the glob):
its model with the backbone's tiny arch (:mod:`um_mae.toolkit.tiny_config`:
the config's necks, heads, losses, data preprocessor and batch augments)
takes one ``train_step`` on a synthetic batch in float32 and, from the
same weights, seed and batch, under ``torch.autocast('cpu')`` in float16
and in bfloat16 with the config's ``AmpOptimWrapper`` options (loss scale,
clipping, parameter-wise settings; :class:`~um_mae.toolkit.cpu_amp.
CPUAmpOptimWrapper`). Each mixed-precision step must give finite losses
and finite gradients, leave the parameters float32 (and finite, and
updated), and log losses within the tolerances below of the float32 step.

A float16 step whose scaled gradients overflow is skipped by the dynamic
loss scaler, which halves the scale, as on a GPU; the step is repeated
(at most ``MAX_BACKOFFS`` times) until the scaler steps.

Configs whose tiny models and optimizer settings are the same (e.g. the
arms of one detector, which differ only in their checkpoint) share one
build and one set of steps.
"""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import um_mae  # noqa: F401
from um_mae.toolkit.cli import to_fp32
from um_mae.toolkit.cpu_amp import cpu_amp_optim_cfg
from um_mae.toolkit.pretrain_inputs import quiet_logger
from um_mae.toolkit.tiny_config import (build_model, config_task, load_config,
                                        shrink_config, synthetic_batch)

# trainings of every config
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)
IDS = [osp.relpath(p, osp.join(REPO, 'configs')) for p in CONFIGS]
DTYPES = ('float16', 'bfloat16')
# image side of the tiny models: pre-training at a size the 32-px uniform
# masking and the 16-px patches divide, the others small
SIZES = dict(pretrain=128, cls=64, det=64, seg=64)

# Relative tolerance of each logged loss against the float32 step: about
# 10x the largest difference measured here (float16 has a 10-bit mantissa,
# bfloat16 a 7-bit one).
RTOL = dict(float16=1e-2, bfloat16=4e-2)
# Losses of the RoI stage of two-stage detectors (and the totals that sum
# them) are computed on proposals that half-precision boxes, through NMS
# and the random sampler, change: another set of RoIs and, in bfloat16,
# regression targets from 8-bit boxes (mmdet's behaviour on a GPU too),
# not a precision error of the model. They must be finite and of the same
# size: float16 within ROI_RTOL, bfloat16 within a factor ROI_FACTOR.
ROI_RTOL = 0.5
ROI_FACTOR = 10
MAX_BACKOFFS = 10


def _roi_stage_loss(key: str, cfg) -> bool:
    """A loss of the RoI heads (or a total that includes them)."""
    if 'roi_head' not in cfg.model:
        return False
    return 'rpn' not in key and 'semantic' not in key


_RESULTS = {}
_LOADED = {}


def _config(path: str):
    """A copy of ``load_config(path)``, parsed once per test process."""
    if path not in _LOADED:
        _LOADED[path] = load_config(path)
    return copy.deepcopy(_LOADED[path])


def _results(path: str) -> dict:
    """The float32 and mixed-precision steps of a config's tiny model, from
    the same weights, seed and batch (shared by the configs with the same
    model and optimizer settings)."""
    cfg = _config(path)
    size = SIZES[config_task(cfg)]
    shrink_config(cfg, size)
    key = repr(
        (cfg.default_scope, cfg.model.to_dict(), cfg.optim_wrapper.to_dict()))
    if key not in _RESULTS:
        quiet_logger()
        torch.manual_seed(0)
        model = build_model(cfg)
        model.train()
        state = copy.deepcopy(model.state_dict())
        batch = synthetic_batch(cfg, size)
        fp32 = copy.deepcopy(cfg)
        to_fp32(fp32)
        wrappers = dict(float32=fp32.optim_wrapper.to_dict())
        for dtype in DTYPES:
            wrappers[dtype] = cpu_amp_optim_cfg(cfg.optim_wrapper.to_dict(),
                                                dtype)
        wrappers['float32'].pop('accumulative_counts', None)  # as AMP's
        _RESULTS[key] = {
            dtype: _step(model, state, batch, wrapper, cfg.default_scope)
            for dtype, wrapper in wrappers.items()
        }
    return _RESULTS[key]


def _step(model, state: dict, batch: dict, wrapper_cfg: dict,
          scope: str) -> dict:
    """One ``train_step`` from ``state``: the logged losses and what the
    optimizer received (gradients, unscaled) and left (parameters)."""
    model.load_state_dict(state)
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    scaler = getattr(wrapper, 'loss_scaler', None)
    backoffs = 0
    while True:
        grads = {}
        handles = [
            p.register_post_accumulate_grad_hook(
                lambda p, name=name: grads.__setitem__(name,
                                                       p.grad.detach().clone()
                                                       ))
            for name, p in model.named_parameters() if p.requires_grad
        ]
        scale = scaler.get_scale() if scaler is not None else 1.
        torch.manual_seed(0)
        try:
            log_vars = model.train_step(copy.deepcopy(batch), wrapper)
        finally:
            for handle in handles:
                handle.remove()
        if scaler is None or scaler.get_scale() >= scale:
            break
        # the scaler found inf / nan gradients and skipped the update
        backoffs += 1
        if backoffs > MAX_BACKOFFS:
            break
    params = dict(model.named_parameters())
    return dict(
        losses={
            k: float(v)
            for k, v in log_vars.items() if 'loss' in k
        },
        grads=sorted(grads),
        grad_dtypes={g.dtype
                     for g in grads.values()},
        nonfinite_grads=[
            k for k, g in grads.items() if not torch.isfinite(g).all()
        ],
        param_dtypes={p.dtype
                      for p in params.values()},
        nonfinite_params=[
            k for k, p in params.items() if not torch.isfinite(p).all()
        ],
        updated=any(not torch.equal(params[k], state[k]) for k in grads),
        backoffs=backoffs,
        final_scale=scaler.get_scale() if scaler is not None else None)


@pytest.mark.dense  # the det / seg configs inherit mmdet's / mmseg's bases
def test_configs_found():
    tasks = {config_task(_config(p)) for p in CONFIGS}
    assert tasks == {'pretrain', 'cls', 'det', 'seg'}


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_mixed_precision_train_step(path, dtype):
    results = _results(path)
    ref, amp = results['float32'], results[dtype]
    cfg = _config(path)
    assert amp['backoffs'] <= MAX_BACKOFFS, (
        f'gradients still overflow at loss scale {amp["final_scale"]}')
    assert amp['losses'].keys() == ref['losses'].keys()
    for key, value in amp['losses'].items():
        assert math.isfinite(value), (key, value)
        expected = ref['losses'][key]
        if _roi_stage_loss(key, cfg) and dtype == 'bfloat16':
            assert expected / ROI_FACTOR <= value <= expected * ROI_FACTOR \
                or abs(value - expected) < 1e-3, (key, value, expected)
            continue
        rtol = ROI_RTOL if _roi_stage_loss(key, cfg) else RTOL[dtype]
        assert value == pytest.approx(expected, rel=rtol, abs=1e-4), key
    # the optimizer got finite float32 gradients for every trained weight
    assert amp['grads'] == ref['grads'] and amp['grads']
    assert amp['grad_dtypes'] == {torch.float32}
    assert amp['nonfinite_grads'] == []
    # the weights stay float32 (and finite), and the step updated them
    assert amp['param_dtypes'] == {torch.float32}
    assert amp['nonfinite_params'] == []
    assert amp['updated'] and ref['updated']
