# Copyright (c) um-mae contributors. All rights reserved.
"""Training hooks that every um-mae config declares.

``configs/_base_/um_mae_runtime.py`` lists them in ``custom_hooks``, so they
run under ``tools/train.py``, ``Runner.from_cfg`` and any other launcher
alike.
"""
import math
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ..models.utils.weight_init import CHECKPOINT_INITS

__all__ = [
    'NonFiniteLossError', 'FiniteLossHook', 'RNGStateHook',
    'PretrainedHook', 'RankMeanLossHook', 'DataSummaryHook', 'UM_MAE_HOOKS'
]

#: the hooks configs/_base_/um_mae_runtime.py declares (the launcher warns
#: when a config lacks one of them)
UM_MAE_HOOKS = ('FiniteLossHook', 'RNGStateHook', 'PretrainedHook',
                'RankMeanLossHook', 'DataSummaryHook')


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first non-finite loss, before it is saved.

    Runs after every training iteration with a priority above the
    checkpoint hook, so no checkpoint with NaN weights is ever written. The
    message names the iteration and, under AMP, the loss scale.

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
        bad = {
            k: float(v)
            for k, v in outputs.items()
            if k.startswith('loss') and hasattr(v, 'numel') and v.numel() == 1
            and not math.isfinite(float(v))
        }
        if not bad:
            return
        msg = (f'non-finite loss {bad} at iteration {runner.iter + 1} '
               f'(epoch {runner.epoch + 1}); training stopped before saving '
               'a checkpoint')
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        if scaler is not None and hasattr(scaler, 'get_scale'):
            msg += f'; AMP loss scale {scaler.get_scale():g}'
        msg += ('. Lower the learning rate, set optim_wrapper.clip_grad='
                'dict(max_norm=...), or check the data; resume from the last '
                'checkpoint with --resume')
        raise NonFiniteLossError(msg)


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
    """Say at the start of training what a COCO dataset silently dropped.

    mmdet skips annotations whose box is empty, outside the image or not
    finite, or whose category is not trained, and (with
    ``filter_empty_gt``) the images left without one, without a word. A
    dataset of only such boxes trains on background. This hook re-reads the
    annotation file once (main process) and logs one line with the counts
    by reason when anything was dropped; ``tools/check_dataset.py CONFIG``
    lists them.
    """

    priority = 'LOW'

    def before_train(self, runner) -> None:
        import json

        from mmengine.dist import is_main_process

        from ..datasets.coco_drops import coco_drop_reasons
        if not is_main_process():
            return
        for dataset in _leaf_datasets(runner.train_dataloader.dataset):
            ann_file = getattr(dataset, 'ann_file', None)
            if not (isinstance(ann_file, str) and ann_file.endswith('.json')
                    and hasattr(dataset, 'cat_ids')):
                continue
            with open(ann_file) as f:
                coco = json.load(f)
            classes = dataset.metainfo.get('classes')
            reasons = coco_drop_reasons(coco, classes)
            skipped = len(coco.get('images', [])) - len(dataset)
            if not reasons and skipped <= 0:
                continue
            by_reason = {}
            for reason in reasons.values():
                by_reason[reason] = by_reason.get(reason, 0) + 1
            detail = ', '.join(f'{n} {r}' for r, n in by_reason.items())
            runner.logger.warning(
                f'training data {ann_file}: {len(reasons)} of '
                f'{len(coco.get("annotations", []))} annotations dropped'
                + (f' ({detail})' if detail else '') +
                f'; {max(skipped, 0)} of {len(coco.get("images", []))} '
                'images skipped (no usable annotation); `python '
                'tools/check_dataset.py CONFIG` lists them')
