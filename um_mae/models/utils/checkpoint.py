# Copyright (c) um-mae contributors. All rights reserved.
"""Load pre-trained weights into a backbone and say what happened.

mmengine's ``Pretrained`` initializer loads with ``strict=False`` and only
warns, so a wrong file, a wrong ``prefix`` or a checkpoint of another model
size trains from random weights without stopping the run.
:func:`load_pretrained` (and the ``CheckedPretrained`` initializer built on
it) reads the same files but

* accepts our own checkpoints (UM-MAE / SimMIM / MAE / MoCo v3
  pre-training, fine-tuned classifiers: ``backbone.*`` keys) and the
  official UM-MAE ones (pre-trained or fine-tuned PVT, Swin and ViT:
  ``blocks.*`` keys), which it converts with the backbone modules'
  ``convert_official_<arch>`` functions;
* logs a report: how many of the model's keys were loaded, which are
  missing and which checkpoint keys were not used;
* raises ``ValueError`` when nothing matched (wrong file or prefix) or when
  shapes differ (another architecture or size), naming the keys, both
  shapes, and the ``arch`` of the backbone class that fits the checkpoint.

Configs use it through the initializer::

    pretrained = 'work_dirs/ummae_pvt-small/epoch_200.pth'
    model = dict(backbone=dict(
        type='mmpretrain.UMPVT',
        init_cfg=dict(type='CheckedPretrained', checkpoint=pretrained,
                      prefix='backbone.')))
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from mmengine.runner import CheckpointLoader
from torch import Tensor

from .official_convert import BACKBONE_CONVERTERS, detect_arch, load_function
from .official_convert import unwrap as unwrap_state_dict

__all__ = [
    'CheckedPretrainedInit', 'detect_official_arch', 'load_pretrained',
    'unwrap_state_dict'
]

# parameters the backbones resize in a load_state_dict pre-hook, so a
# checkpoint of another input size is not a shape mismatch
_RESIZED_ON_LOAD = ('pos_embed', )
_MAX_LISTED = 12


def detect_official_arch(state_dict: Dict[str, Tensor]) -> Optional[str]:
    """``'pvt'``, ``'swin'`` or ``'vit'`` for an official UM-MAE state dict.

    Official checkpoints number their blocks globally (``blocks.<i>.``,
    no prefix); ours and mmpretrain's never do.

    Args:
        state_dict (dict): An unwrapped state dict.

    Returns:
        str | None: The official architecture, None for other layouts.
    """
    if not any(re.match(r'blocks\.\d+\.', k) for k in state_dict):
        return None
    try:
        return detect_arch(state_dict)
    except ValueError:
        return None


def _convert_official(state_dict: Dict[str, Tensor],
                      arch: str) -> 'OrderedDict[str, Tensor]':
    return load_function(BACKBONE_CONVERTERS[arch])(state_dict)


def _select_prefix(state_dict: Dict[str, Tensor],
                   prefix: str) -> 'OrderedDict[str, Tensor]':
    selected = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                           if k.startswith(prefix))
    if not selected:
        found = sorted({k.split('.')[0] + '.' for k in state_dict})
        raise ValueError(
            f'no checkpoint key starts with prefix {prefix!r}; the keys '
            f'start with {found[:_MAX_LISTED]}: set prefix to one of them '
            '(prefix=None loads the whole checkpoint)')
    return selected


def _listing(keys: List[str]) -> str:
    shown = ', '.join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f', ... ({more} more)' if more > 0 else '')


def _shape_mismatches(
        model_sd: Dict[str, Tensor],
        ckpt_sd: Dict[str, Tensor]) -> List[Tuple[str, tuple, tuple]]:
    return [(k, tuple(v.shape), tuple(model_sd[k].shape))
            for k, v in ckpt_sd.items()
            if k in model_sd and k.split('.')[-1] not in _RESIZED_ON_LOAD
            and tuple(v.shape) != tuple(model_sd[k].shape)]


def _fitting_archs(module: nn.Module, ckpt_sd: Dict[str, Tensor]) -> List[str]:
    """Archs of ``type(module).arch_zoo`` whose shapes fit the checkpoint.

    The candidates are built on the ``meta`` device (no memory, no init
    cost) with the class defaults for all other arguments.
    """
    zoo = getattr(type(module), 'arch_zoo', None)
    if not isinstance(zoo, dict):
        return []
    names = {}  # aliases share their settings object: keep the longest
    for name, settings in zoo.items():
        if len(name) > len(names.get(id(settings), '')):
            names[id(settings)] = name
    fits = []
    for name in names.values():
        try:
            with torch.device('meta'):
                candidate = type(module)(arch=name)
        except Exception:  # an arch that needs other arguments
            continue
        model_sd = candidate.state_dict()
        common = [k for k in ckpt_sd if k in model_sd]
        if common and not _shape_mismatches(model_sd, ckpt_sd):
            missing = len(set(model_sd) - set(ckpt_sd))
            fits.append((missing, name))
    return [name for _, name in sorted(fits)]


def load_pretrained(module: nn.Module,
                    filename: str,
                    prefix: Optional[str] = None,
                    map_location: Union[str, torch.device] = 'cpu',
                    logger: Union[str, MMLogger] = 'current') -> dict:
    """Load a checkpoint into ``module`` with a report and sanity checks.

    Steps: read ``filename`` with mmengine's ``CheckpointLoader`` (local
    paths, URLs, ``open-mmlab://`` ...), unwrap ``'state_dict'`` /
    ``'model'``; if the keys are those of an official UM-MAE model, convert
    them (``prefix`` is then not used, the converter yields backbone keys);
    otherwise keep the keys under ``prefix`` and strip it. Then check the
    shapes, load with ``strict=False`` (the modules' load hooks, e.g. the
    resizing of ``pos_embed``, run as usual) and log the report.

    Args:
        module (nn.Module): The model part to fill, e.g. a backbone.
        filename (str): Checkpoint path or URL.
        prefix (str, optional): Keep the keys under this prefix, e.g.
            ``'backbone.'`` for a backbone from a whole-model checkpoint.
            None loads every key. Defaults to None.
        map_location (str | torch.device): Where to load the tensors.
            Defaults to ``'cpu'``.
        logger (str | MMLogger): Logger for the report (see
            :func:`mmengine.logging.print_log`). Defaults to ``'current'``.

    Returns:
        dict: ``source`` (``'official <arch>'`` or ``'prefix <prefix>'`` /
        ``'whole checkpoint'``), ``matched``, ``missing`` and
        ``unexpected`` (lists of keys).

    Raises:
        ValueError: When no key of the checkpoint is a key of ``module``,
            or when shapes differ.
    """
    checkpoint = CheckpointLoader.load_checkpoint(
        filename, map_location=map_location, logger=logger)
    state_dict = unwrap_state_dict(checkpoint)
    official = detect_official_arch(state_dict)
    if official is not None:
        source = f'official UM-MAE {official} checkpoint, converted'
        if prefix:
            print_log(
                f'{filename} is an official UM-MAE {official} checkpoint; '
                f'its keys have no {prefix!r} prefix, so prefix is not used',
                logger=logger)
        state_dict = _convert_official(state_dict, official)
    elif prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        source = f'keys under {prefix!r}'
        state_dict = _select_prefix(state_dict, prefix)
    else:
        source = 'whole checkpoint'

    name = type(module).__name__
    model_sd = module.state_dict()
    matched = [k for k in state_dict if k in model_sd]
    if not matched:
        raise ValueError(
            f'no key of {filename} ({source}: '
            f'{_listing(list(state_dict))}) is a key of {name} '
            f'({_listing(list(model_sd))}); it is the wrong file or the '
            "wrong prefix (e.g. prefix='backbone.' for a whole-model "
            'checkpoint)')
    mismatches = _shape_mismatches(model_sd, state_dict)
    if mismatches:
        rows = '; '.join(f'{k}: checkpoint {c} vs model {m}'
                         for k, c, m in mismatches[:5])
        fits = _fitting_archs(module, state_dict)
        hint = (f"build {name} with arch='{fits[0]}'" if fits else
                f'none of the archs of {name} fits; pass arch=dict(...) with '
                'the settings the checkpoint was trained with')
        raise ValueError(
            f'{len(mismatches)} parameters of {filename} ({source}) have '
            f'other shapes than in {name}: {rows}; the checkpoint is of '
            f'another architecture or size: {hint}')

    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # a load hook could not adapt a tensor
        raise ValueError(f'cannot load {filename} into {name}: {e}') from e
    report = dict(
        source=source,
        matched=matched,
        missing=list(result.missing_keys),
        unexpected=list(result.unexpected_keys))
    lines = [
        f'Loaded {filename} into {name} ({source}): matched '
        f'{len(matched)}/{len(model_sd)} keys of the model'
    ]
    if report['missing']:
        lines.append(f'missing in the checkpoint ({len(report["missing"])},'
                     f' left as initialized): {_listing(report["missing"])}')
    if report['unexpected']:
        lines.append(f'unused checkpoint keys ({len(report["unexpected"])})'
                     f': {_listing(report["unexpected"])}')
    print_log('\n  '.join(lines), logger=logger)
    return report


@WEIGHT_INITIALIZERS.register_module(name='CheckedPretrained')
class CheckedPretrainedInit:
    """``init_cfg=dict(type='CheckedPretrained', ...)``: checked loading.

    Takes the arguments of mmengine's ``Pretrained`` initializer and runs
    :func:`load_pretrained`: official UM-MAE checkpoints are converted, a
    report is logged, and an unusable checkpoint stops the run.

    Args:
        checkpoint (str): Checkpoint path or URL.
        prefix (str, optional): Keys to keep, e.g. ``'backbone.'``.
            Defaults to None.
        map_location (str): Where to load the tensors. Defaults to
            ``'cpu'``.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        report = load_pretrained(module, self.checkpoint, self.prefix,
                                 self.map_location)
        # mmengine runs initializers other than 'Pretrained' before the
        # submodules' own init_weights (some, like mmpretrain's
        # TransformerEncoderLayer, re-draw their weights); mark the
        # submodules whose every tensor came from the checkpoint as done
        loaded = set(report['matched'])
        for name, sub in module.named_modules():
            if sub is module or not isinstance(sub, BaseModule):
                continue
            keys = [f'{name}.{k}' for k in sub.state_dict()]
            if keys and all(k in loaded for k in keys):
                sub._is_init = True
        if hasattr(module, '_params_init_info'):
            update_init_info(
                module,
                init_info=f'{type(self).__name__}: load from '
                f'{self.checkpoint}')
