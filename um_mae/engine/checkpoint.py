# Copyright (c) um-mae contributors. All rights reserved.
"""Runner checkpoints: read safely, checked before they are used.

mmengine 0.10.7 reads checkpoints with ``torch.load`` and its defaults.
Since torch 2.6 these refuse the message hub, numpy values and random
states a runner checkpoint holds, so ``--resume`` fails; loading them with
``weights_only=False`` instead would run any code a crafted file carries.
:func:`register_checkpoint_loader` makes mmengine read every file (local,
http(s) URL, model-zoo name) with
:func:`um_mae.models.converters.read_checkpoint`: ``weights_only=True`` plus
an allow-list of exactly what runner checkpoints contain (anything else
needs ``UM_MAE_UNSAFE_PICKLE=1``). It is an explicit step, not an effect of
``import um_mae``: configs declare it by importing
``um_mae.engine.checkpoint_loading`` (``configs/_base_/um_mae_runtime.py``
does), and the tools call it.

The checks refuse, in one line naming the file and what it is, a
``--resume`` checkpoint that holds no training state, and an evaluation
checkpoint whose tensors do not fit the model (``--allow-partial`` opts
out).
"""
import os.path as osp
from typing import Optional

import torch.nn as nn

__all__ = [
    'load_local_checkpoint', 'load_mmcls_checkpoint',
    'refuse_remote_checkpoint', 'register_checkpoint_loader',
    'describe_checkpoint', 'check_resume_checkpoint', 'check_last_checkpoint',
    'check_model_checkpoint'
]


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's local-file loader, reading with ``read_checkpoint``.

    Args:
        filename (str): Local checkpoint path.
        map_location (str | None): As in :func:`torch.load`.
            Defaults to None.

    Returns:
        dict: The loaded checkpoint.
    """
    from ..models.converters import read_checkpoint
    return read_checkpoint(filename, map_location=map_location)


def load_mmcls_checkpoint(filename: str, map_location=None):
    """mmengine's ``mmcls://`` loader, reading with ``read_checkpoint``."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint

    from ..models.converters import read_checkpoint
    return _process_mmcls_checkpoint(
        read_checkpoint(filename, map_location=map_location))


def refuse_remote_checkpoint(filename: str, map_location=None):
    """Loader for schemes whose files mmengine unpickles unchecked."""
    raise ValueError(
        f'cannot read {filename}: um_mae reads checkpoints from local '
        'paths, http(s) URLs and mmengine\'s model-zoo names only (other '
        'sources would be unpickled without checks); download the file and '
        'pass its local path')


#: mmengine's checkpoint schemes read with ``read_checkpoint``
SAFE_SCHEMES = ('', 'http://', 'https://', 'torchvision://', 'modelzoo://',
                'open-mmlab://', 'openmmlab://')
#: schemes mmengine would unpickle without checks: refused
REFUSED_SCHEMES = ('pavi://', r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


def register_checkpoint_loader() -> None:
    """Make mmengine read every checkpoint safely (see the module doc).

    Replaces the handlers of mmengine's ``CheckpointLoader`` in this
    process: local paths (scheme ``''``), http(s) URLs and the model-zoo
    names go through ``read_checkpoint`` (URLs are downloaded into a cache
    keyed by the whole URL); ``pavi://``, ``s3://`` and ``petrel://``,
    which mmengine would unpickle without checks, are refused.
    """
    from mmengine.runner import CheckpointLoader
    for prefixes, loader in ((SAFE_SCHEMES, load_local_checkpoint),
                             (('mmcls://', ), load_mmcls_checkpoint),
                             (REFUSED_SCHEMES, refuse_remote_checkpoint)):
        CheckpointLoader.register_scheme(
            prefixes=list(prefixes), loader=loader, force=True)


def _state_dict(checkpoint) -> dict:
    from ..models.converters import unwrap
    return unwrap(checkpoint) if isinstance(checkpoint, dict) else {}


def _model_type(config_text: str) -> str:
    """``model.type`` of a config's text, read without executing it."""
    import ast
    try:
        tree = ast.parse(config_text)
    except SyntaxError:
        return 'a model'
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model'
                for t in node.targets)
                and isinstance(node.value, ast.Call)):
            for kw in node.value.keywords:
                if kw.arg == 'type' and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
    return 'a model'


def describe_checkpoint(checkpoint) -> str:
    """What a checkpoint is, in words, for error messages."""
    from ..models.converters import describe_own_layout, detect_format
    if not isinstance(checkpoint, dict):
        return f'a {type(checkpoint).__name__}, not a checkpoint dict'
    meta = checkpoint.get('meta') or {}
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if isinstance(text, str):
        # mmengine stores the config's text: name the model it trained
        name = meta.get('experiment_name', '')
        where = f' ({name})' if name else ''
        return (f'a training checkpoint of {_model_type(text)}{where}, '
                f'epoch {meta.get("epoch")}, iteration {meta.get("iter")}')
    state_dict = _state_dict(checkpoint)
    fmt = detect_format(state_dict)
    if fmt is not None:
        return f'a {fmt.name} checkpoint'
    own = describe_own_layout(state_dict)
    keys = ', '.join(list(state_dict)[:3])
    return (own or 'a state dict') + f' ({len(state_dict)} tensors: {keys}' \
        + (', ...)' if len(state_dict) > 3 else ')')


def check_resume_checkpoint(path: str) -> None:
    """Refuse a ``--resume`` file that cannot continue a training run.

    Raises:
        FileNotFoundError, ValueError: Missing, unreadable, or holding no
            training state (weights only, a foreign release, ...); the
            message names the file, what it is and the fix.
    """
    from ..models.converters import read_checkpoint
    checkpoint = read_checkpoint(path)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    missing = [
        k for k in ('state_dict', 'optimizer', 'meta')
        if not isinstance(checkpoint, dict) or k not in checkpoint
    ]
    if not missing and isinstance(meta, dict) and 'iter' in meta:
        return
    raise ValueError(
        f'{path} cannot be resumed: it is {describe_checkpoint(checkpoint)} '
        f'without {", ".join(missing) or "an iteration count"}. --resume '
        'continues a run from a checkpoint tools/train.py wrote; to start '
        f'from these weights use --cfg-options load_from={path} (the whole '
        f'model) or pretrained={path} (the backbone)')


def check_last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (no path) would continue, checked.

    Returns:
        str | None: Its path, or None when the work dir has none.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    if not path:
        raise ValueError(f'{pointer} is empty; resume from a checkpoint '
                         'file with --resume FILE')
    if not osp.isfile(path):
        raise ValueError(
            f'{pointer} names {path}, which does not exist; resume from a '
            'checkpoint file with --resume FILE')
    check_resume_checkpoint(path)
    return path


def check_model_checkpoint(model: nn.Module,
                           checkpoint,
                           path: str,
                           allow_partial: bool = False) -> None:
    """Refuse to evaluate ``model`` with a checkpoint that does not fit it.

    Every tensor of the model must be in the checkpoint with its shape, and
    the checkpoint must hold nothing else.

    Args:
        model (nn.Module): The model (or a wrapper with ``.module``).
        checkpoint (dict): The loaded file.
        path (str): Its path, for the message.
        allow_partial (bool): Only warn. Defaults to False.

    Raises:
        ValueError: Naming what the file is and what the model expected.
    """
    model = getattr(model, 'module', model)
    model_sd = model.state_dict()
    ckpt_sd = _state_dict(checkpoint)
    missing = [k for k in model_sd if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    shapes = [
        k for k in model_sd if k in ckpt_sd
        and tuple(ckpt_sd[k].shape) != tuple(model_sd[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f'{len(missing)} of the model\'s {len(model_sd)} '
                     f'tensors missing (e.g. {missing[0]})')
    if unexpected:
        parts.append(f'{len(unexpected)} tensors the model does not have '
                     f'(e.g. {unexpected[0]})')
    if shapes:
        k = shapes[0]
        parts.append(f'{len(shapes)} of other shapes (e.g. {k}: '
                     f'{tuple(ckpt_sd[k].shape)} vs '
                     f'{tuple(model_sd[k].shape)})')
    msg = (f'{path} does not fit {type(model).__name__}: '
           f'{"; ".join(parts)}. It is {describe_checkpoint(checkpoint)}')
    if allow_partial:
        from mmengine.logging import print_log
        print_log(f'--allow-partial: {msg}', logger='current', level=30)
        return
    raise ValueError(f'{msg}; pass a checkpoint this config trained, or '
                     '--allow-partial to evaluate anyway')
