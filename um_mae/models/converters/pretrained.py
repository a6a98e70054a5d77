# Copyright (c) um-mae contributors. All rights reserved.
"""Load pre-trained weights into a backbone exactly, or stop.

mmengine's ``Pretrained`` initializer loads with ``strict=False`` and only
warns, so a wrong file, a wrong ``prefix`` or a checkpoint of another model
trains from partly random weights without stopping the run.
:func:`load_pretrained` (and the ``CheckedPretrained`` initializer built on
it)

* reads the file with :func:`~um_mae.models.converters.read_checkpoint`
  (no code from the file runs);
* tells the release from the keys (:func:`detect_format`): official UM-MAE,
  MAE, timm / DeiT, MoCo v3, BEiT are mapped to our keys; anything else is
  our / mmpretrain's layout, taken under ``prefix``;
* refuses a load that leaves a *trunk* tensor of the backbone unfilled, or
  leaves a checkpoint tensor unused that would change what the network
  computes, naming them and the fix (``allow_partial=True`` loads anyway,
  with a warning);
* refuses shapes of another architecture or size, naming the ``arch`` that
  fits;
* logs the detected release and what was filled, new and left out.

Which keys are trunk is decided per backbone. A module may declare two
tuples of regular expressions (matched at the start of a key):

* ``pretrained_new_keys``: its own keys a checkpoint need not fill (parts a
  pre-trained model does not have, e.g. the relative position bias tables
  of ``WindowedViT``); they keep the module's initialization;
* ``pretrained_unused_keys``: checkpoint keys it leaves out by design (e.g.
  the class token in a dense backbone).

A module may also define ``adapt_pretrained_keys(state_dict)``: a rule of
its own layout applied to the mapped keys before they are checked (e.g.
``WindowedViT`` gathering per-block bias tables into shared ones).

For every module, the tokens of masked pre-training (``mask_token``,
``vis_mask_token``) and the norms of pooled features (``fc_norm``, ``ln2``)
are both. Configs use the initializer::

    pretrained = 'work_dirs/ummae_pvt-small/epoch_200.pth'
    model = dict(backbone=dict(
        type='mmpretrain.UMPVT',
        init_cfg=dict(type='CheckedPretrained', checkpoint=pretrained,
                      prefix='backbone.')))
"""
import logging
import re
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import Tensor

from .formats import CheckpointFormat, describe_own_layout, detect_format
from .keys import strip_prefix, unwrap
from .reading import read_checkpoint
from .vit import Conversion

__all__ = ['CheckedPretrainedInit', 'load_pretrained']

# parameters the backbones resize in a load_state_dict pre-hook, so a
# checkpoint of another input size or window is not a shape mismatch
_RESIZED_ON_LOAD = ('pos_embed', 'relative_position_bias_table')
# new for, and not used by, every backbone: masked pre-training tokens and
# the norms of pooled features
_NEVER_TRUNK = (r'(vis_)?mask_token$', r'fc_norm\.', r'ln2\.')
_MAX_LISTED = 8


def _listing(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f', ... ({more} more)' if more > 0 else '')


def _matching(keys, patterns: Sequence[str]) -> List[str]:
    regexes = [re.compile(p) for p in patterns]
    return [k for k in keys if any(r.match(k) for r in regexes)]


def _patterns(module: nn.Module, attr: str) -> Tuple[str, ...]:
    return _NEVER_TRUNK + tuple(getattr(module, attr, ()))


def _trunk(module: nn.Module, model_sd: Dict[str, Tensor]) -> List[str]:
    new = set(_matching(model_sd, _patterns(module, 'pretrained_new_keys')))
    return [k for k in model_sd if k not in new]


def _shape_mismatches(
        model_sd: Dict[str, Tensor],
        ckpt_sd: Dict[str, Tensor]) -> List[Tuple[str, tuple, tuple]]:
    return [(k, tuple(v.shape), tuple(model_sd[k].shape))
            for k, v in ckpt_sd.items()
            if k in model_sd and k.split('.')[-1] not in _RESIZED_ON_LOAD
            and tuple(v.shape) != tuple(model_sd[k].shape)]


def _fitting_archs(module: nn.Module, ckpt_sd: Dict[str, Tensor]) -> List[str]:
    """Archs of ``type(module).arch_zoo`` that the checkpoint fills.

    The candidates are built on the ``meta`` device (no memory, no init
    cost) with the class defaults for all other arguments; an arch fits
    when no shape differs and every trunk tensor is in the checkpoint.
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
        if not _shape_mismatches(model_sd, ckpt_sd) and all(
                k in ckpt_sd for k in _trunk(candidate, model_sd)):
            fits.append(name)
    return fits


def _select(
        state_dict: Dict[str, Tensor], prefix: Optional[str], filename: str,
        module: nn.Module
) -> Tuple[str, Conversion, Optional[CheckpointFormat]]:
    """(source description, backbone keys, detected release)."""
    where = ''
    if prefix and any(k.startswith(prefix) for k in state_dict):
        state_dict = strip_prefix(state_dict, prefix)
        where = f', keys under {prefix!r}'
    fmt = detect_format(state_dict)
    if fmt is not None:
        return fmt.name + where, fmt.convert(state_dict), fmt
    if prefix and not where:
        found = sorted({k.split('.')[0] + '.' for k in state_dict})
        raise ValueError(
            f'no key of {filename} starts with prefix {prefix!r} (its keys '
            f'start with {_listing(found)}) and its layout is none of the '
            f'known releases; {_prefix_hint(state_dict, module)}')
    what = describe_own_layout(state_dict)
    source = 'um_mae / mmpretrain layout' + (f' ({what})' if what else '')
    return source + (where
                     or ', whole checkpoint'), Conversion(state_dict), None


def _prefix_hint(state_dict: Dict[str, Tensor], module: nn.Module) -> str:
    """Prefixes under which the file fills the whole trunk of ``module``."""
    model_sd = module.state_dict()
    trunk = _trunk(module, model_sd)
    candidates = sorted({
        '.'.join(k.split('.')[:depth]) + '.'
        for k in state_dict
        for depth in (1, 2, 3) if k.count('.') >= depth
    })
    good = []
    for prefix in candidates:
        sub = strip_prefix(state_dict, prefix)
        fmt = detect_format(sub)
        ckpt_sd = fmt.convert(sub).state_dict if fmt else sub
        if all(k in ckpt_sd
               for k in trunk) and not _shape_mismatches(model_sd, ckpt_sd):
            good.append(prefix)
    name = type(module).__name__
    if good:
        return f"prefix={good[0]!r} fills every trunk tensor of {name}"
    return f'under no prefix does it fill the trunk of {name}: it is not ' \
        f'a {name} checkpoint'


def _no_pos_embed_hint(name: str, module_cls: Optional[type]) -> str:
    """The fix for a checkpoint without ``pos_embed``, if the model has one.

    Only a backbone with a ``use_abs_pos_embed`` argument (``WindowedViT``)
    can be built without the table.
    """
    import inspect
    try:
        params = inspect.signature(module_cls).parameters
    except (TypeError, ValueError):
        params = {}
    if 'use_abs_pos_embed' in params:
        return ('the checkpoint has no absolute position embedding: build '
                f'{name} without one (use_abs_pos_embed=False)')
    return ('the checkpoint has no absolute position embedding, which '
            f'{name} always has (pos_embed): it was trained for another '
            f'architecture; pass a checkpoint of {name}')


def _partial_hints(name: str,
                   fmt: Optional[CheckpointFormat],
                   ckpt_sd: Dict[str, Tensor],
                   model_sd: Dict[str, Tensor],
                   unfilled: List[str],
                   changes_math: List[str],
                   fits: List[str],
                   module_cls: Optional[type] = None) -> List[str]:
    """What to change so that the checkpoint fits exactly."""
    hints = []
    if fmt is not None and fmt.needs:
        hints.append(fmt.needs)
    if _matching(changes_math, [r'.*gamma[12]\.']):
        hints.append(f'the checkpoint has layer scale: build {name} with '
                     'layer_scale_init_value > 0')
    if _matching(unfilled, [r'.*gamma[12]\.']):
        hints.append('the checkpoint has no layer scale: build '
                     f'{name} without layer_scale_init_value')
    if 'pos_embed' in unfilled and 'pos_embed' not in ckpt_sd:
        hints.append(_no_pos_embed_hint(name, module_cls))
    if 'pos_embed' in changes_math:
        hints.append('the checkpoint has an absolute position embedding: '
                     f'build {name} with one')
    if _matching(unfilled, [r'ln1\.']) and 'ln2.weight' in ckpt_sd:
        hints.append('the checkpoint has no final norm, only the norm of '
                     f'pooled features: build {name} with final_norm=False')
    if _matching(changes_math, [r'.*relative_position_bias_table$']):
        hints.append(f'{name} has no relative position biases for the '
                     "checkpoint's")
    depths = [
        len({
            m.group(1)
            for k in sd
            for m in [re.match(r'layers\.(\d+)\.', k)] if m
        }) for sd in (ckpt_sd, model_sd)
    ]
    if depths[0] != depths[1] and all(depths):
        hints.append(f'the checkpoint has {depths[0]} blocks, {name} '
                     f'{depths[1]}: build it with the depth of the checkpoint')
    if fits:
        hints.append(f"build {name} with arch='{fits[0]}', which the "
                     'checkpoint fills')
    return hints


def _dropped_summary(dropped: Dict[str, str]) -> str:
    return ', '.join(f'{why} ({n})'
                     for why, n in Counter(dropped.values()).items())


def load_pretrained(module: nn.Module,
                    filename: str,
                    prefix: Optional[str] = None,
                    allow_partial: bool = False,
                    map_location: Union[str, torch.device] = 'cpu',
                    logger: Union[str, MMLogger] = 'current') -> dict:
    """Load a checkpoint into ``module`` exactly, with a report.

    Args:
        module (nn.Module): The model part to fill, e.g. a backbone.
        filename (str): Checkpoint path or http(s) URL (``.pth``, ``.bin``,
            ``.pth.tar``, ``.safetensors``).
        prefix (str, optional): For a file in our / mmpretrain's layout,
            keep the keys under this prefix, e.g. ``'backbone.'`` for a
            backbone from a whole-model checkpoint; None takes every key.
            Published releases (MAE, MoCo v3, ...) are found by their keys
            and need no prefix. Defaults to None.
        allow_partial (bool): Load even if trunk tensors stay unfilled or
            checkpoint tensors that change the outputs are not used (they
            are logged as a warning). Defaults to False.
        map_location (str | torch.device): Where to load the tensors.
            Defaults to ``'cpu'``.
        logger (str | MMLogger): Logger for the report (see
            :func:`mmengine.logging.print_log`). Defaults to ``'current'``.

    Returns:
        dict: ``source`` (the detected release), ``matched`` (filled model
        keys), ``missing`` (model keys left as initialized), ``unfilled``
        (the trunk ones among them), ``unexpected`` (mapped checkpoint keys
        the model has no place for), ``changes_math`` (those among them and
        unknown keys that would change the outputs) and ``dropped``
        (checkpoint key -> why it is not part of a backbone).

    Raises:
        ValueError: The file is no checkpoint, nothing matches, shapes
            differ, or (without ``allow_partial``) the load is partial.
    """
    name = type(module).__name__
    checkpoint = read_checkpoint(filename, map_location=map_location)
    try:
        state_dict = unwrap(checkpoint)
    except TypeError as e:
        raise ValueError(f'{filename}: {e}') from e
    if not state_dict:
        entries = list(checkpoint)[:_MAX_LISTED]
        raise ValueError(f'{filename} holds no tensors (entries: {entries});'
                         ' pass a checkpoint with model weights')
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    source, conv, fmt = _select(state_dict, prefix, filename, module)
    ckpt_sd = conv.state_dict
    # a backbone whose layout differs from every release's by a rule of
    # ours (e.g. WindowedViT's shared bias tables) maps the keys first
    adapt = getattr(module, 'adapt_pretrained_keys', None)
    if callable(adapt):
        try:
            ckpt_sd = adapt(ckpt_sd)
        except ValueError as e:
            raise ValueError(f'{filename} ({source}): {e}') from e

    model_sd = module.state_dict()
    matched = [k for k in ckpt_sd if k in model_sd]
    if not matched:
        raise ValueError(
            f'no key of {filename} ({source}: {_listing(list(ckpt_sd))}) is '
            f'a key of {name} ({_listing(list(model_sd))}); '
            f'{_prefix_hint(state_dict, module)}')
    mismatches = _shape_mismatches(model_sd, ckpt_sd)
    if mismatches:
        rows = '; '.join(f'{k}: checkpoint {c} vs model {m}'
                         for k, c, m in mismatches[:5])
        fits = _fitting_archs(module, ckpt_sd)
        hint = (f"build {name} with arch='{fits[0]}'" if fits else
                f'none of the archs of {name} fits; pass arch=dict(...) with '
                'the settings the checkpoint was trained with')
        raise ValueError(
            f'{len(mismatches)} parameters of {filename} ({source}) have '
            f'other shapes than in {name}: {rows}; the checkpoint is of '
            f'another architecture or size: {hint}')

    trunk = _trunk(module, model_sd)
    unfilled = [k for k in trunk if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    harmless = set(
        _matching(unexpected, _patterns(module, 'pretrained_unused_keys')))
    changes_math = [k for k in unexpected if k not in harmless]
    changes_math += conv.unknown
    if unfilled or changes_math:
        problems = []
        if unfilled:
            problems.append(f'{len(unfilled)} of {len(trunk)} trunk tensors '
                            f'of {name} would stay unfilled '
                            f'({_listing(unfilled)})')
        if changes_math:
            problems.append(f'{len(changes_math)} checkpoint tensors that '
                            'change the outputs would not be used '
                            f'({_listing(changes_math)})')
        hints = _partial_hints(name, fmt, ckpt_sd, model_sd, unfilled,
                               changes_math, _fitting_archs(module, ckpt_sd),
                               type(module))
        msg = (f'{filename} ({source}) does not fit {name}: ' +
               '; '.join(problems + hints))
        if not allow_partial:
            raise ValueError(msg + '; pass allow_partial=True to load it '
                             'anyway')
        print_log(
            msg + ' (loaded anyway: allow_partial=True)',
            logger=logger,
            level=logging.WARNING)

    try:
        result = module.load_state_dict(ckpt_sd, strict=False)
    except RuntimeError as e:  # a load hook could not adapt a tensor
        raise ValueError(f'cannot load {filename} into {name}: {e}') from e
    missing = list(result.missing_keys)
    report = dict(
        source=source,
        matched=matched,
        missing=missing,
        unfilled=unfilled,
        unexpected=unexpected,
        changes_math=changes_math,
        dropped=conv.dropped)
    lines = [
        f'Loaded {filename} into {name}: {source}; filled '
        f'{len(matched)}/{len(model_sd)} tensors'
    ]
    new = [k for k in missing if k not in unfilled]
    if new:
        lines.append(f'new in {name}, initialized by it ({len(new)}): '
                     f'{_listing(new)}')
    if harmless:
        lines.append(f'not used by {name} ({len(harmless)}): '
                     f'{_listing(sorted(harmless))}')
    if conv.dropped:
        lines.append(
            f'left out of the checkpoint: {_dropped_summary(conv.dropped)}')
    print_log('\n  '.join(lines), logger=logger)
    return report


@WEIGHT_INITIALIZERS.register_module(name='CheckedPretrained')
class CheckedPretrainedInit:
    """``init_cfg=dict(type='CheckedPretrained', ...)``: exact loading.

    Takes the arguments of mmengine's ``Pretrained`` initializer and runs
    :func:`load_pretrained`. ``checkpoint=None`` loads nothing: the module
    keeps its own (random) initialization. The module must run it after its
    random initialization (``um_mae.models.utils.RandomThenCheckpointInit``,
    the order of every um_mae backbone), or a child's ``init_weights`` could
    re-draw loaded tensors.

    Args:
        checkpoint (str, optional): Checkpoint path or URL.
        prefix (str, optional): Keys to keep for a file in our layout, e.g.
            ``'backbone.'``. Defaults to None.
        allow_partial (bool): Load a checkpoint that does not fill the
            whole trunk. Defaults to False.
        map_location (str): Where to load the tensors. Defaults to
            ``'cpu'``.
    """

    def __init__(self,
                 checkpoint: Optional[str],
                 prefix: Optional[str] = None,
                 allow_partial: bool = False,
                 map_location: str = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.allow_partial = allow_partial
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        if self.checkpoint is None:
            print_log(
                f'{type(module).__name__}: CheckedPretrained with '
                'checkpoint=None, keeping the random initialization',
                logger='current')
            return
        if not callable(getattr(module, 'random_init', None)):
            # mmengine runs initializers other than 'Pretrained' before the
            # children's own init_weights, which may re-draw what is loaded
            raise TypeError(
                f'CheckedPretrained loads into modules that initialise '
                f'randomly first and then load (um_mae.models.utils.'
                f'RandomThenCheckpointInit: UMPVT, UMSwinTransformer, UMViT, '
                f'WindowedViT, MAEPyramidDecoder); {type(module).__name__} '
                f"is not one: use mmengine's dict(type='Pretrained', ...) "
                'or a um_mae backbone')
        load_pretrained(module, self.checkpoint, self.prefix,
                        self.allow_partial, self.map_location)
        if hasattr(module, '_params_init_info'):
            update_init_info(
                module,
                init_info=f'{type(self).__name__}: load from '
                f'{self.checkpoint}')
