# Copyright (c) um-mae contributors. All rights reserved.
"""Training hooks that every um-mae config declares.

``configs/_base_/um_mae_runtime.py`` lists them in ``custom_hooks``, so they
run under ``tools/train.py``, ``Runner.from_cfg`` and any other launcher
alike.
"""
import math
import warnings
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ..models.utils.weight_init import CHECKPOINT_INITS

__all__ = [
    'NonFiniteLossError', 'FiniteLossHook', 'RNGStateHook', 'PretrainedHook',
    'RankMeanLossHook', 'DataSummaryHook', 'TrainingNoticesHook',
    'UM_MAE_HOOKS', 'apply_config_lr'
]

#: the hooks configs/_base_/um_mae_runtime.py declares (the launcher warns
#: when a config lacks one of them)
UM_MAE_HOOKS = ('FiniteLossHook', 'RNGStateHook', 'PretrainedHook',
                'RankMeanLossHook', 'DataSummaryHook', 'TrainingNoticesHook')


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first sign of divergence, before it is kept.

    Runs after every training iteration with a priority above the
    checkpoint hook. It stops the run when a loss is NaN / inf, or when the
    gradient norm the optimizer wrapper logs (``optim_wrapper.clip_grad``;
    not under AMP, whose loss scaler skips such steps) is. The message
    names the iteration, the AMP loss scale, and the last checkpoint kept.

    :class:`~um_mae.engine.AtomicCheckpointHook` keeps a checkpoint only
    once the iteration after it has passed this check, so a checkpoint that
    already holds a diverged update (finite weights whose next step is not)
    is dropped, never named by ``last_checkpoint``.

    The stop's advice works: on ``--resume`` a learning rate in the config
    (``--cfg-options optim_wrapper.optimizer.lr=...``) that differs from the
    one the checkpoint was trained with replaces it: the optimizer's and the
    schedulers' stored rates are scaled by new / old (logged), instead of
    being restored from the checkpoint.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        # the outputs may still require grad: read detached values
        values = {
            k: float(v.detach())
            for k, v in outputs.items() if k.startswith('loss')
            and isinstance(v, torch.Tensor) and v.numel() == 1
        }
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        bad.update(_non_finite_grad_norm(runner))
        if not bad:
            return
        msg = (f'non-finite loss {bad} at iteration {runner.iter + 1} '
               f'(epoch {runner.epoch + 1}); training stopped, no checkpoint '
               f'of the diverged weights is kept')
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        if scaler is not None and hasattr(scaler, 'get_scale'):
            msg += f'; AMP loss scale {scaler.get_scale():g}'
        for hook in runner.hooks:  # the checkpoint saved before this step
            if hasattr(hook, 'discard_pending'):
                hook.discard_pending(runner)
        raise NonFiniteLossError(msg + '. ' + _recovery_advice(runner))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False):
            apply_config_lr(runner, checkpoint)


def _non_finite_grad_norm(runner) -> dict:
    """``{'grad_norm': value}`` if this step's logged norm is NaN / inf."""
    wrapper = runner.optim_wrapper
    if getattr(wrapper, 'loss_scaler', None) is not None:
        return {}  # AMP: an overflowing step is skipped, not applied
    if not getattr(wrapper, 'clip_grad_kwargs', None):
        return {}
    scalars = runner.message_hub.log_scalars
    if 'train/grad_norm' not in scalars:
        return {}
    value = float(scalars['train/grad_norm'].current())
    return {} if math.isfinite(value) else {'grad_norm': value}


def _recovery_advice(runner) -> str:
    """What to do after a non-finite stop, naming the kept checkpoint."""
    import os.path as osp
    lr = runner.cfg.get('optim_wrapper', {}).get('optimizer', {}).get('lr')
    lower = f'{lr / 10:g}' if isinstance(lr, (int, float)) else 'LR'
    option = f'--cfg-options optim_wrapper.optimizer.lr={lower}'
    pointer = osp.join(runner.work_dir, 'last_checkpoint')
    last = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            last = f.read().strip()
    if last and osp.isfile(last):
        return (f'The last checkpoint kept is {last}: continue from it with '
                f'a lower learning rate, `--resume {option}` (an lr given '
                'with --resume replaces the checkpoint\'s; the schedule is '
                'scaled to it), or set optim_wrapper.clip_grad=dict('
                'max_norm=...), or check the data')
    return (f'No checkpoint was kept: start again with a lower learning '
            f'rate ({option}), or set optim_wrapper.clip_grad=dict('
            'max_norm=...), or check the data')


def apply_config_lr(runner, checkpoint: dict) -> None:
    """Resume with the config's learning rate where it differs.

    mmengine restores the optimizer's learning rates and the schedulers'
    base values from the checkpoint, so a lower lr given with ``--resume``
    would be ignored. Here the checkpoint's rates are scaled, per param
    group, by (the config's initial lr) / (the checkpoint's), before
    mmengine loads them; the change is logged.

    Args:
        runner: The runner, with the optimizer built from the config.
        checkpoint (dict): The checkpoint being resumed (changed in place).
    """
    optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
    state = checkpoint.get('optimizer')
    if optimizer is None or not isinstance(state, dict) or not isinstance(
            state.get('param_groups'), list):
        return
    groups = state['param_groups']
    if len(groups) != len(optimizer.param_groups):
        return
    ratios = []
    for ours, theirs in zip(optimizer.param_groups, groups):
        new = ours.get('initial_lr', ours.get('lr'))
        old = theirs.get('initial_lr', theirs.get('lr'))
        ratios.append(new / old if old else 1.0)
    if all(math.isclose(r, 1.0, rel_tol=1e-9) for r in ratios):
        return
    for group, ratio in zip(groups, ratios):
        for key in ('lr', 'initial_lr'):
            if key in group:
                group[key] *= ratio
    schedulers = checkpoint.get('param_schedulers') or []
    if isinstance(schedulers, dict):
        schedulers = [s for v in schedulers.values() for s in v]
    for sched in schedulers:
        if not isinstance(sched, dict) or sched.get('param_name') != 'lr':
            continue
        for key in ('base_values', '_last_value'):
            values = sched.get(key)
            if isinstance(values, list) and len(values) == len(ratios):
                sched[key] = [v * r for v, r in zip(values, ratios)]
    old = groups[0].get('initial_lr', groups[0].get('lr')) / ratios[0]
    new = groups[0].get('initial_lr', groups[0].get('lr'))
    runner.logger.warning(
        f'resuming with the configured learning rate {new:g} instead of '
        f'the checkpoint\'s {old:g}: the optimizer\'s and the schedulers\' '
        f'stored rates are scaled by {new / old:g}')


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the main process's random generators with each checkpoint.

    On ``--resume`` they are restored, so that randomness drawn in the main
    process (random masks drawn by the model, drop path, ...) continues as
    in an uninterrupted run. Loading a checkpoint with ``load_from`` only
    (fine-tuning) leaves the generators alone.

    A DataLoader draws its workers' base seed from the global torch
    generator each time an iterator is created: at every epoch with
    ``persistent_workers=False``, once per run with ``True``. A resumed run
    would then draw at other points than an uninterrupted one and shift the
    model's random stream. The hook gives the training DataLoader a
    generator of its own (seeded from the run's seed) unless it has one.
    """

    priority = 'VERY_LOW'

    def before_run(self, runner) -> None:
        loader = getattr(runner.train_loop, 'dataloader', None)
        if loader is None or getattr(loader, 'generator', 1) is not None:
            return
        generator = torch.Generator()
        generator.manual_seed(int(getattr(runner, 'seed', 0) or 0))
        loader.generator = generator

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        import random

        import numpy as np
        import torch
        state = dict(
            torch=torch.get_rng_state(),
            numpy=np.random.get_state(),
            python=random.getstate())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None or not getattr(runner, '_resume', False):
            return
        import random

        import numpy as np
        import torch
        torch.set_rng_state(state['torch'])
        np.random.set_state(state['numpy'])
        random.setstate(state['python'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class PretrainedHook(Hook):
    """Make the config's top-level ``pretrained`` the checkpoint loaded.

    Configs name their checkpoint once, ``pretrained = 'FILE'``, and pass it
    to an initializer (``init_cfg=dict(type='CheckedPretrained',
    checkpoint=pretrained, ...)``). mmengine substitutes that value when the
    file is parsed, so ``--cfg-options pretrained=OTHER`` or a derived config
    that only sets ``pretrained = 'OTHER'`` would change nothing. Before the
    weights are initialised this hook sets the checkpoint of every
    checkpoint initializer (``CheckedPretrained`` / ``Pretrained``) of the
    model to ``cfg.pretrained``; ``pretrained = None`` removes them (random
    initialisation). Without a ``pretrained`` key it does nothing.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        cfg = getattr(runner, 'cfg', None)
        if cfg is None or 'pretrained' not in cfg:
            return
        pretrained = cfg.pretrained
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        targets = []
        for name, module in model.named_modules():
            init_cfgs = getattr(module, 'init_cfg', None)
            as_list = init_cfgs if isinstance(init_cfgs, list) else [init_cfgs]
            if any(
                    isinstance(c, dict) and c.get('type') in CHECKPOINT_INITS
                    for c in as_list):
                targets.append((name or type(model).__name__, module))
        if not targets:
            if pretrained is None:
                return
            raise ValueError(
                f'the config sets pretrained={pretrained!r} but no module of '
                f'{type(model).__name__} loads a checkpoint; add init_cfg='
                "dict(type='CheckedPretrained', checkpoint=pretrained, "
                "prefix='backbone.') to model.backbone")
        for name, module in targets:
            module.init_cfg = self._apply(module.init_cfg, pretrained)
            what = (f'loads {pretrained}' if pretrained is not None else
                    'is initialised randomly (pretrained=None)')
            print_log(f'{name} {what} (config key `pretrained`)',
                      logger='current')

    @staticmethod
    def _apply(init_cfg, pretrained):
        as_list = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        out = []
        for c in as_list:
            if isinstance(c, dict) and c.get('type') in CHECKPOINT_INITS:
                if pretrained is None:
                    continue
                c = dict(c, checkpoint=pretrained)
            out.append(c)
        if not isinstance(init_cfg, list):
            return out[0] if out else None
        return out


@HOOKS.register_module()
class RankMeanLossHook(Hook):
    """Log the losses averaged over all processes, not rank 0's alone.

    mmengine logs the loss of the process that writes the log, so the
    curves of 1 process x 2b and 2 processes x b differ by the noise of
    half a batch. This hook replaces every scalar of the training step's
    outputs by its mean over the processes before they are logged (and
    before :class:`FiniteLossHook` checks them, so every rank stops
    together). It does nothing in a single process.
    """

    priority = 'HIGHEST'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or get_world_size() == 1:
            return
        keys = [
            k for k, v in outputs.items()
            if isinstance(v, torch.Tensor) and v.numel() == 1
        ]
        if not keys:
            return
        device = outputs[keys[0]].device
        # every rank must reduce the same keys: compare the counts first
        count = torch.tensor([len(keys), -len(keys)], device=device)
        all_reduce(count, op='max')
        if count.tolist() != [len(keys), -len(keys)]:
            print_log(
                'RankMeanLossHook: the processes log different losses; '
                "logging each rank's own", logger='current', level=30)
            return
        values = torch.stack([outputs[k].detach().float() for k in keys])
        all_reduce(values, op='mean')
        for key, value in zip(keys, values):
            outputs[key] = value


def _leaf_datasets(dataset):
    """The datasets inside dataset wrappers (Repeat, Concat, ours...)."""
    inner = getattr(dataset, 'datasets', None)
    if isinstance(inner, (list, tuple)):
        return [d for sub in inner for d in _leaf_datasets(sub)]
    if getattr(dataset, 'dataset', None) is not None:
        return _leaf_datasets(dataset.dataset)
    return [dataset]


@HOOKS.register_module()
class DataSummaryHook(Hook):
    """Say at the start of training what the dataset silently dropped.

    mmdet skips annotations whose box is empty, outside the image or not
    finite, or whose category is not trained, and (with
    ``filter_empty_gt``) the images without an annotation of a trained
    category, without a word. This hook re-reads a COCO annotation file
    once (main process) and logs one line with the counts by reason when
    anything was dropped; it stops the run when no annotation is usable
    (or fewer than ``min_usable_fraction`` of them): such a file trains on
    background only. The rule is shared with ``tools/check_dataset.py``
    (:func:`um_mae.datasets.coco_drops.coco_training_summary`). For folder
    datasets (no annotation file) it logs the dangling symbolic links the
    folder scan skips.

    Args:
        min_usable_fraction (float): Stop when fewer than this fraction of
            a COCO file's annotations are usable. Defaults to 0 (stop only
            when none is).
    """

    priority = 'LOW'

    def __init__(self, min_usable_fraction: float = 0.0) -> None:
        if not 0 <= min_usable_fraction <= 1:
            raise ValueError('min_usable_fraction must be in [0, 1], got '
                             f'{min_usable_fraction}')
        self.min_usable_fraction = min_usable_fraction

    def before_train(self, runner) -> None:
        from mmengine.dist import is_main_process
        if not is_main_process():
            return
        for dataset in _leaf_datasets(runner.train_dataloader.dataset):
            ann_file = getattr(dataset, 'ann_file', None)
            if (isinstance(ann_file, str) and ann_file.endswith('.json')
                    and hasattr(dataset, 'cat_ids')):
                self._coco(runner, dataset, ann_file)
            elif not ann_file:
                self._dangling_links(runner, dataset)

    def _coco(self, runner, dataset, ann_file: str) -> None:
        import json

        from ..datasets.coco_drops import (coco_training_summary,
                                           usable_annotations_error)
        with open(ann_file) as f:
            coco = json.load(f)
        filter_cfg = getattr(dataset, 'filter_cfg', None) or {}
        summary = coco_training_summary(
            coco, dataset.metainfo.get('classes'),
            bool(filter_cfg.get('filter_empty_gt', False)),
            filter_cfg.get('min_size', 0))
        stop = usable_annotations_error(ann_file, summary,
                                        self.min_usable_fraction)
        if stop:
            raise ValueError(stop)
        reasons = summary['reasons']
        skipped = len(coco.get('images', [])) - len(dataset)
        background = len(summary['background'])
        if not reasons and skipped <= 0:
            return
        by_reason = {}
        for reason in reasons.values():
            by_reason[reason] = by_reason.get(reason, 0) + 1
        detail = ', '.join(f'{n} {r}' for r, n in by_reason.items())
        runner.logger.warning(
            f'training data {ann_file}: {len(reasons)} of '
            f'{len(coco.get("annotations", []))} annotations dropped' +
            (f' ({detail})' if detail else '') +
            f'; {max(skipped, 0)} of {len(coco.get("images", []))} '
            'images skipped (no annotation of a trained category, or below '
            f'min_size); {background} trained as background only (every box '
            'dropped); `python tools/check_dataset.py CONFIG` lists them')

    @staticmethod
    def _dangling_links(runner, dataset) -> None:
        import os
        prefix = getattr(dataset, 'data_prefix', None) or {}
        folder = prefix.get('img_path') if isinstance(prefix, dict) else None
        if not isinstance(folder, str) or not os.path.isdir(folder):
            return
        dangling = []
        for top, _, files in os.walk(folder, followlinks=True):
            for name in files:
                path = os.path.join(top, name)
                if os.path.islink(path) and not os.path.exists(path):
                    dangling.append(path)
        if dangling:
            runner.logger.warning(
                f'training data {folder}: {len(dangling)} dangling symbolic '
                f'link(s) skipped (e.g. {dangling[0]} -> '
                f'{os.readlink(dangling[0])}); fix or remove them')


#: mmengine's copy of torch's check that ``scheduler.step()`` follows
#: ``optimizer.step()`` (``mmengine/optim/scheduler/param_scheduler.py``)
_SCHEDULER_ORDER_WARNING = (r'Detected call of `scheduler\.step\(\)` before '
                            r'`optimizer\.step\(\)`')


@HOOKS.register_module()
class TrainingNoticesHook(Hook):
    """Say at the start of training what the user must know, and no more.

    - A resumed run with nothing left to train says so. The pre-training
      configs set ``resume = True`` (a restarted job continues from the
      latest checkpoint of its work dir), so re-running the command of a
      finished run would otherwise load its last checkpoint, train nothing
      and exit 0 without a word. The message names the work dir and how to
      start a new run or train longer.
    - mmengine's warning that ``scheduler.step()`` was called before
      ``optimizer.step()`` is silenced for the training run. In a runner
      loop :class:`~mmengine.hooks.ParamSchedulerHook` steps the
      schedulers after the optimizer wrapper's update, so the wrong order
      that the check looks for cannot occur; it fires only because the
      first update did not step the optimizer: with
      ``optim_wrapper.accumulative_counts = N > 1`` the first step comes
      after N iterations, and under fp16 AMP
      the loss scaler skips steps whose gradients overflow.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._warnings = None

    def before_train(self, runner) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings(
            'ignore',
            message=_SCHEDULER_ORDER_WARNING,
            category=UserWarning,
            module=r'mmengine\.optim\.scheduler')
        self._say_if_complete(runner)

    def after_train(self, runner) -> None:
        if self._warnings is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None

    @staticmethod
    def _say_if_complete(runner) -> None:
        from mmengine.runner import EpochBasedTrainLoop
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            done, total, unit, key = (runner.epoch, runner.max_epochs, 'epoch',
                                      'max_epochs')
        else:
            done, total, unit, key = (runner.iter, runner.max_iters,
                                      'iteration', 'max_iters')
        if not total or done < total:
            return
        runner.logger.warning(
            f'nothing to train: the run in {runner.work_dir} is already '
            f'complete ({unit} {done} of {total}; the config resumes the '
            'latest checkpoint of its work dir). To train again give '
            'another --work-dir, or delete its checkpoints and '
            'last_checkpoint to start over in this one; to train '
            f'longer raise train_cfg.{key} and resume')
