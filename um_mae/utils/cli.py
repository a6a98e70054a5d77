# Copyright (c) um-mae contributors. All rights reserved.
"""What ``tools/train.py`` and ``tools/test.py`` share.

One launcher serves mmpretrain, mmdet and mmseg configs: the toolbox is read
from the config's ``default_scope``. Bad input (a missing config, a missing
data root, an uninstalled toolbox, an unknown launcher) is reported as one
:class:`UsageError` naming the fix instead of a traceback from deep inside
mmengine.
"""
import contextlib
import importlib
import os
import os.path as osp
import sys
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.config.utils import MODULE2PACKAGE

__all__ = [
    'UsageError', 'TOOLBOXES', 'LAUNCHERS', 'add_common_args', 'load_config',
    'check_toolbox', 'check_data_roots', 'check_model_channels',
    'check_runtime_hooks', 'to_fp32', 'setup_distributed', 'user_errors',
    'translate_upstream_error', 'UPSTREAM_ERRORS', 'DictAction',
    'mmcv_ops_error', 'check_mmcv_ops'
]

#: default_scope -> the package to import and how to install it
TOOLBOXES = {
    'mmpretrain': 'mmpretrain==1.2.0',
    'mmdet': 'mmdet==3.3.0',
    'mmseg': 'mmsegmentation==1.2.2',
}
#: toolboxes whose models need mmcv's compiled ops (``mmcv.ops``)
OPS_TOOLBOXES = ('mmdet', 'mmseg')
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class UsageError(Exception):
    """Bad input to a tool; the message says what is wrong and the fix."""


def add_common_args(parser) -> None:
    """Arguments shared by train.py and test.py."""
    parser.add_argument(
        '--work-dir', help='folder for logs and checkpoints '
        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.batch_size=8 optim_wrapper.optimizer.lr=1e-4')
    parser.add_argument(
        '--launcher',
        default='none',
        help=f'job launcher, one of {", ".join(LAUNCHERS)}')
    # torchrun passes --local-rank / --local_rank to each process
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Load a config and apply the common command-line overrides."""
    if launcher not in LAUNCHERS:
        raise UsageError(f'unknown --launcher {launcher!r}; use one of '
                         f'{", ".join(LAUNCHERS)}')
    if not osp.isfile(path):
        hint = ''
        if osp.isdir('configs'):
            hint = ('; list the shipped ones with '
                    "`find configs -name '*.py' -not -path '*_base_*'`")
        raise UsageError(f'config file {path!r} does not exist{hint}')
    try:
        cfg = Config.fromfile(path)
    except ModuleNotFoundError as e:
        # a 'mmseg::' base of an uninstalled mmseg raises without e.name:
        # "mmsegmentation is not installed, please install ... manually"
        name = e.name or str(e).split(' ', 1)[0]
        module = {v: k for k, v in MODULE2PACKAGE.items()}.get(name, name)
        check_mmcv_ops(module.split('.')[0])
        raise UsageError(
            f'config {path!r} imports {name!r}, which is not installed; '
            'run `bash tools/install.sh`') from e
    except Exception as e:
        raise UsageError(f'config {path!r} could not be loaded: '
                         f'{type(e).__name__}: {e}') from e
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def mmcv_ops_error() -> Optional[str]:
    """Why mmcv's compiled ops are unusable, with the fix; None if usable."""
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as e:
        return (f"mmcv's compiled ops are missing (`import mmcv.ops`: {e}); "
                'add them, mmdet and mmseg with '
                '`bash tools/install.sh --with-ops`')
    return None


def check_mmcv_ops(scope: str) -> None:
    """Raise :class:`UsageError` if ``scope`` needs ops that are missing.

    A pre-training-only install (``tools/install.sh --pretrain-only``) has
    mmcv without its compiled ops and neither mmdet nor mmseg.
    """
    error = mmcv_ops_error() if scope in OPS_TOOLBOXES else None
    if error:
        raise UsageError(f'{scope} configs cannot run here: {error}')


def check_toolbox(cfg: Config) -> str:
    """Import the toolbox named by ``default_scope`` and return its name."""
    scope = cfg.get('default_scope')
    if scope not in TOOLBOXES:
        raise UsageError(
            f'config default_scope={scope!r} is not one of '
            f'{", ".join(TOOLBOXES)}; inherit a base of the toolbox the '
            "config is for (e.g. _base_ = ['mmdet::_base_/default_runtime.py'"
            "]) or set default_scope")
    check_mmcv_ops(scope)
    try:
        importlib.import_module(scope)
    except ImportError as e:
        raise UsageError(
            f'the config needs {scope} (default_scope={scope!r}), which '
            f'cannot be imported ({e}); install the pinned stack with '
            f'`bash tools/install.sh` ({TOOLBOXES[scope]})') from e
    # Registers um_mae modules and the torch>=2.6 checkpoint loader even
    # when the config does not list um_mae in custom_imports.
    importlib.import_module('um_mae')
    return scope


def _datasets(cfg: ConfigDict, where: str) -> Iterator[Tuple[str, dict]]:
    """Yield (path in the config, dataset cfg) through dataset wrappers."""
    if not isinstance(cfg, dict):
        return
    yield where, cfg
    if isinstance(cfg.get('dataset'), dict):
        yield from _datasets(cfg['dataset'], f'{where}.dataset')
    for i, sub in enumerate(cfg.get('datasets') or []):
        yield from _datasets(sub, f'{where}.datasets[{i}]')


def check_data_roots(cfg: Config,
                     loaders: Sequence[str] = _DATALOADERS) -> None:
    """Raise :class:`UsageError` if a dataset's ``data_root`` is missing."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or not isinstance(loader_cfg.get('dataset'), dict):
            continue
        for where, ds in _datasets(loader_cfg['dataset'],
                                   f'{loader}.dataset'):
            root = ds.get('data_root')
            if not isinstance(root, str) or '://' in root or osp.isdir(root):
                continue
            demo = ''
            if 'demo' in root:
                demo = ('generate the demo data with '
                        '`python tools/make_demo_data.py`, or ')
            raise UsageError(
                f'data root {root!r} ({where}.data_root) does not exist; '
                f'{demo}point it at your dataset with --cfg-options '
                f'{where}.data_root=/path/to/data')


def check_runtime_hooks(cfg: Config) -> List[str]:
    """Warn when a config lacks the hooks of ``um_mae_runtime.py``.

    The guarantees of the README (NaN stop, exact resume, logged loss of all
    processes, ``pretrained`` override, checkpoints that survive a kill) are
    declared in ``configs/_base_/um_mae_runtime.py`` and the checkpoint hook
    of the runtime bases; a config that replaces ``custom_hooks`` or the
    checkpoint hook loses them. Nothing is added: the config stays the truth.

    Returns:
        list[str]: The missing hook types (empty when all are declared).
    """
    from um_mae.engine.hooks import UM_MAE_HOOKS
    declared = ' '.join(
        str(h.get('type')) for h in cfg.get('custom_hooks') or []
        if isinstance(h, dict))
    missing = [h for h in UM_MAE_HOOKS if h not in declared]
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and 'AtomicCheckpointHook' not in str(
            checkpoint.get('type')):
        missing.append('AtomicCheckpointHook')
    if missing:
        print(
            f'warning: the config does not declare {", ".join(missing)}; '
            'the NaN stop, exact resume, rank-mean loss logging, the '
            '`pretrained` override or kill-safe checkpoints may not apply. '
            "Inherit configs/_base_/um_mae_runtime.py (and use type="
            "'mmpretrain.AtomicCheckpointHook' for default_hooks.checkpoint)"
            ', or list them again where the config sets its own',
            file=sys.stderr)
    return missing


def to_fp32(cfg: Config) -> None:
    """Train an AMP config in float32 (``--fp32``; AMP needs CUDA).

    ``AmpOptimWrapper`` becomes ``OptimWrapper`` and the options only AMP
    knows (``loss_scale``, ``dtype``, ``use_fsdp``) are dropped; every other
    option (accumulation, clipping, constructor, paramwise settings) stays.
    """
    wrapper = cfg.optim_wrapper
    if 'AmpOptimWrapper' not in str(wrapper.get('type')):
        return
    wrapper.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        wrapper.pop(key, None)


_SYNC_BN = ('SyncBN', 'MMSyncBN', 'NaiveSyncBN')


def _sync_bn_to_bn(cfg) -> int:
    """Replace SyncBN norm layers by BN in a config tree; count them."""
    count = 0
    if isinstance(cfg, dict):
        if cfg.get('type') in _SYNC_BN:
            cfg['type'] = 'BN'
            count += 1
        for value in cfg.values():
            count += _sync_bn_to_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            count += _sync_bn_to_bn(value)
    return count


def setup_distributed(cfg: Config) -> None:
    """Use gloo on machines without CUDA (mmengine assumes a GPU)."""
    if cfg.launcher == 'none':
        return
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() or dist.is_initialized():
        return
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.launcher != 'pytorch':
        raise UsageError(
            f'--launcher {cfg.launcher} needs CUDA GPUs; on CPU use '
            '`bash tools/dist_train.sh CONFIG N` (--launcher pytorch)')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR')
               if k not in os.environ]
    if missing:
        raise UsageError(
            f'--launcher pytorch without {", ".join(missing)} in the '
            'environment; start it with `bash tools/dist_train.sh CONFIG N`')
    dist.init_process_group(backend='gloo')
    # torch's SyncBatchNorm needs CUDA tensors once a process group exists
    # (DDP refuses to wrap it on CPU): CPU processes normalise per process
    if _sync_bn_to_bn(cfg.model):
        print(
            'warning: no CUDA: the SyncBN layers of the config run as '
            'per-process BN on CPU (gloo); statistics are not synchronised '
            'across processes. Use GPUs for the recipe itself',
            file=sys.stderr)
    # mmengine passes device_ids=[LOCAL_RANK] to DDP, which CPU modules reject
    cfg.setdefault(
        'model_wrapper_cfg',
        ConfigDict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False)))


#: upstream messages (torch, mmengine, mmdet, mmseg) that name neither the
#: cause in the user's terms nor the fix: (pattern, what we print instead)
UPSTREAM_ERRORS = [
    (r'Expected more than 1 value per channel when training',
     'a BatchNorm layer got one value per channel: one image per process '
     'reached a 1 x 1 map (e.g. the pooling module of UperNet at batch 1); '
     'use train_dataloader.batch_size >= 2 per process, or SyncBN over '
     'several GPU processes (bash tools/dist_train.sh CONFIG N)'),
]


def translate_upstream_error(msg: str) -> str:
    """Our one-line text for an upstream message, or ``msg`` unchanged."""
    import re
    for pattern, ours in UPSTREAM_ERRORS:
        if re.search(pattern, msg):
            return f'{ours} ({msg.splitlines()[0]})'
    return msg


@contextlib.contextmanager
def user_errors():
    """Report configuration and data errors as one line, not a traceback.

    ``ValueError`` / ``TypeError`` / ``KeyError`` / ``FileNotFoundError``
    (raised by our modules with the offending value and the fix, or by the
    registries for unknown types) and a non-finite loss end the run with
    ``error: <message>`` and exit code 1. Set ``UM_MAE_DEBUG=1`` to get the
    full traceback instead.
    """
    from um_mae.engine.hooks import NonFiniteLossError
    try:
        yield
    except (UsageError, ValueError, TypeError, KeyError, FileNotFoundError,
            NonFiniteLossError) as e:
        if os.environ.get('UM_MAE_DEBUG'):
            raise
        msg = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
        if 'Original Traceback' in msg:  # re-raised from a dataloader worker
            head = f'{type(e).__name__}: '
            starts = [i for i, line in enumerate(msg.splitlines())
                      if line.startswith(head)]
            if starts:
                msg = '\n'.join(msg.splitlines()[starts[-1]:])[len(head):]
        msg = translate_upstream_error(msg)
        print(f'error: {msg}\n(set UM_MAE_DEBUG=1 for the traceback)',
              file=sys.stderr)
        sys.exit(1)


def _model_cfg_channels(cfg: Config) -> Optional[Tuple[str, list]]:
    neck = cfg.model.get('neck')
    if isinstance(neck, (list, tuple)) and neck and isinstance(
            neck[0], dict) and isinstance(neck[0].get('in_channels'),
                                          (list, tuple)):
        # a neck list is built as nn.Sequential: its first module gets them
        return 'model.neck[0].in_channels', list(neck[0].in_channels)
    if isinstance(neck, dict) and isinstance(
            neck.get('in_channels'), (list, tuple)):
        return 'model.neck.in_channels', list(neck.in_channels)
    head = cfg.model.get('decode_head')
    if isinstance(head, dict) and isinstance(
            head.get('in_channels'), (list, tuple)):
        return 'model.decode_head.in_channels', list(head.in_channels)
    return None


def _selected(cfg: Config, got: list) -> list:
    """The maps a segmentation head picks with ``in_index``."""
    head = cfg.model.get('decode_head')
    index = head.get('in_index') if isinstance(head, dict) else None
    if cfg.model.get('neck') is None and isinstance(index, (list, tuple)):
        if all(-len(got) <= i < len(got) for i in index):
            return [got[i] for i in index]
    return got


def check_model_channels(model, cfg: Config, size: int = 128) -> None:
    """Check that the backbone's maps fit the neck's ``in_channels``.

    A dense config whose ``backbone.out_indices`` do not match the neck's (or
    segmentation head's) ``in_channels`` otherwise fails deep inside a
    convolution. The backbone runs once on a ``size x size`` zero image.
    """
    import torch
    expected = _model_cfg_channels(cfg)
    model = getattr(model, 'module', model)
    backbone = getattr(model, 'backbone', None)
    if expected is None or backbone is None:
        return
    where, channels = expected
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            device = next(backbone.parameters()).device
            outs = backbone(torch.zeros(1, 3, size, size, device=device))
    except Exception:  # the model has its own input rules; not our check
        return
    finally:
        backbone.train(was_training)
    got = [o.shape[1] for o in outs] if isinstance(outs,
                                                   (list, tuple)) else None
    if got is None or _selected(cfg, got) == channels:
        return
    out_indices = cfg.model.backbone.get('out_indices')
    raise UsageError(
        f'model.backbone.out_indices={out_indices} gives maps with '
        f'{got} channels but {where}={channels}; make them agree, e.g. '
        f'{where}={got}')
