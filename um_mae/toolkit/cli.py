# Copyright (c) um-mae contributors. All rights reserved.
"""What ``tools/train.py`` and ``tools/test.py`` share.

One launcher serves mmpretrain, mmdet and mmseg configs: the toolbox is read
from the config's ``default_scope``. Bad input (a missing config, a missing
data root, an uninstalled toolbox, an unknown launcher) is reported as one
:class:`UsageError` naming the fix instead of a traceback from deep inside
mmengine.
"""
import importlib
import os
import os.path as osp
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.config.utils import MODULE2PACKAGE

from .errors import UsageError, fail, user_errors

__all__ = [
    'UsageError', 'TOOLBOXES', 'LAUNCHERS', 'add_common_args', 'load_config',
    'check_toolbox', 'set_data_root', 'check_data_roots',
    'check_model_channels',
    'check_runtime_hooks', 'to_fp32', 'setup_distributed', 'user_errors',
    'fail', 'check_option_types', 'CheckedDictAction', 'DictAction',
    'check_writable_dir', 'check_out_file', 'write_out_file', 'OUT_FORMATS',
    'FIGURE_FORMATS', 'mmcv_ops_error', 'check_mmcv_ops', 'apply_smoke'
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


class CheckedDictAction(DictAction):
    """mmengine's ``DictAction`` that rejects items without ``=``."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or []:
            if '=' not in item:
                parser.error(
                    f'{option_string} {item!r} is not KEY=VALUE; write e.g. '
                    f'{item}=VALUE (lists as key=[a,b], strings with spaces '
                    'in quotes)')
        super().__call__(parser, namespace, values, option_string)


@contextmanager
def config_text_once() -> Iterator[None]:
    """Inside, ``Config.pretty_text`` formats each distinct config once.

    mmengine formats the runner's config (yapf) five times per training
    run: the log, the dumped file, the visualizer, the runtime info and the
    checkpoint's meta, about 1.3 s each on a 2-core machine. The text
    depends only on the config's content, so a config unchanged since its
    last formatting gets the same text again; a changed config is formatted
    anew.
    """
    prop = Config.pretty_text
    texts = {}

    def pretty_text(cfg: Config) -> str:
        key = (repr(cfg._cfg_dict.to_dict()),
               getattr(cfg, '_format_python_code', True))
        if key not in texts:
            texts[key] = prop.fget(cfg)
        return texts[key]

    Config.pretty_text = property(pretty_text, doc=prop.__doc__)
    try:
        yield
    finally:
        Config.pretty_text = prop


def add_common_args(parser) -> None:
    """Arguments shared by train.py and test.py."""
    parser.add_argument(
        '--work-dir', help='folder for logs and checkpoints '
        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--data-root',
        metavar='DIR',
        help='read every dataset of the config from DIR: the data_root of '
        'the train / val / test datasets and the evaluators\' annotation '
        'files under the old root (--cfg-options still override single '
        'entries)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CheckedDictAction,
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
                work_dir: Optional[str] = None,
                data_root: Optional[str] = None) -> Config:
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
    from um_mae.engine.config_bases import find_renamed_packages
    find_renamed_packages()  # 'mmseg::' bases on the OneDL fork
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
    if data_root is not None:
        set_data_root(cfg, data_root)
    if cfg_options:
        check_option_types(cfg, cfg_options)
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


_MISSING = object()


def _lookup(cfg, key: str):
    """The value at a dotted ``--cfg-options`` key (list indices allowed)."""
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(
                part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def check_option_types(cfg: Config, options: dict) -> None:
    """Refuse a ``--cfg-options`` value of another kind than the config's.

    A word where the config holds a number or a bool
    (``train_dataloader.batch_size=abc``) would otherwise fail much later,
    deep inside the toolbox, without naming the option.
    """
    for key, value in options.items():
        old = _lookup(cfg, key)
        if old is _MISSING or old is None or not isinstance(value, str):
            continue
        if isinstance(old, bool):
            kind, example = 'True or False', 'True'
        elif isinstance(old, (int, float)):
            kind, example = 'a number', repr(old)
        else:
            continue
        raise UsageError(
            f'--cfg-options {key}={value!r}: the config holds {kind} there '
            f'({old!r}), not a word; write e.g. {key}={example}')


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


def check_writable_dir(path: str, what: str = '--work-dir') -> None:
    """Create ``path`` if needed and check that files can be written there.

    Raises:
        UsageError: ``path`` is a file, or cannot be created or written.
    """
    import tempfile
    if osp.exists(path) and not osp.isdir(path):
        raise UsageError(f'{what} {path!r} is a file, not a folder; give a '
                         'folder (it is created if missing)')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(
            f'cannot write to {what} {path!r} ({e.strerror}); choose a '
            f'writable folder with {what}') from e


#: formats ``mmengine.dump`` writes, by file extension
OUT_FORMATS = ('.json', '.yaml', '.yml', '.pkl', '.pickle')


#: image formats of the figure tools
FIGURE_FORMATS = ('.png', '.jpg', '.jpeg')


def check_out_file(path: str, formats: Sequence[str] = OUT_FORMATS) -> None:
    """Check an ``--out`` file before any work is done.

    Args:
        path (str): The file to write.
        formats (Sequence[str]): Allowed extensions. Defaults to
            :data:`OUT_FORMATS` (metrics); :data:`FIGURE_FORMATS` for
            figures.

    Raises:
        UsageError: Unsupported extension, a folder, or a place that cannot
            be written.
    """
    if osp.isdir(path):
        raise UsageError(f'--out {path!r} is a folder; give a file name, '
                         f'e.g. {osp.join(path, "out" + formats[0])}')
    ext = osp.splitext(path)[1].lower()
    if ext not in formats:
        raise UsageError(
            f'--out {path!r}: cannot write '
            f'{ext + " files" if ext else "a file without extension"}; use '
            f'one of {", ".join(formats)}')
    check_writable_dir(osp.dirname(osp.abspath(path)), '--out folder')


def write_out_file(obj, path: str) -> None:
    """Write ``obj`` to ``path`` (format from the extension), atomically."""
    import mmengine

    from um_mae.engine.atomic_save import atomic_write
    ext = osp.splitext(path)[1].lower().lstrip('.')
    ext = {'yml': 'yaml', 'pickle': 'pkl'}.get(ext, ext)
    data = mmengine.dump(obj, file_format=ext)
    atomic_write(data if isinstance(data, bytes) else data.encode(), path)


def set_data_root(cfg: Config, root: str) -> List[str]:
    """Point every dataset of ``cfg`` at ``root`` (``--data-root``).

    Sets ``data_root`` of each dataset of the train / val / test loaders
    (through dataset wrappers) and moves the evaluators' ``ann_file``
    (COCO) from the old root to ``root``: the configs substitute the data
    root into these paths when they are parsed, so overriding a top-level
    ``data_root`` would change nothing.

    Returns:
        list[str]: The config paths that were changed.
    """
    changed, old_roots = [], set()
    for loader in _DATALOADERS:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or not isinstance(loader_cfg.get('dataset'), dict):
            continue
        for where, ds in _datasets(loader_cfg['dataset'],
                                   f'{loader}.dataset'):
            if isinstance(ds.get('data_root'), str):
                old_roots.add(ds['data_root'])
                ds['data_root'] = root
                changed.append(f'{where}.data_root')
    if not changed:
        raise UsageError('--data-root: no dataset of the config has a '
                         'data_root; set the paths with --cfg-options')
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        for i, ev in enumerate(evaluators if isinstance(evaluators, list)
                               else [evaluators]):
            ann = ev.get('ann_file') if isinstance(ev, dict) else None
            if not isinstance(ann, str):
                continue
            old = [r for r in old_roots if r and ann.startswith(r)]
            if not old:
                raise UsageError(
                    f'--data-root: {key}.ann_file={ann!r} is not under the '
                    f'config\'s data root {sorted(old_roots)}; set it with '
                    f'--cfg-options {key}.ann_file=PATH')
            ev['ann_file'] = osp.join(root, ann[len(max(old, key=len)):]
                                      .lstrip('/'))
            changed.append(key + (f'[{i}]' if isinstance(evaluators, list)
                                  else '') + '.ann_file')
    return changed


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
    if torch.cuda.is_available():
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
    # a process that trains several configs joins the group once
    if not dist.is_initialized():
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


def _dataset_length(cfg: Config, loader: str) -> int:
    """The number of samples of ``cfg[loader].dataset`` (built here)."""
    import copy

    from mmengine.registry import DATASETS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = DATASETS.build(copy.deepcopy(cfg[loader].dataset))
    return len(dataset)


def apply_smoke(cfg: Config, iters: int) -> List[str]:
    """Turn ``cfg`` into a trial run of ``iters`` iterations (``--smoke``).

    The config's model, data pipeline, optimizer, schedulers, hooks and
    evaluator stay; what changes is how long it runs and what it keeps:

    - ``iters`` iterations with an ``IterBasedTrainLoop`` (epoch-based
      loops too; a ``RepeatDataset``'s ``times`` then does not matter),
      one evaluation after the last one (when the config has a val loop);
    - the train batch clipped to the number of training samples;
    - ``num_workers=0`` (``persistent_workers`` off, no ``prefetch_factor``)
      for every dataloader;
    - a log line every iteration, one checkpoint at the end, no resume.

    Args:
        cfg (Config): A loaded config, its toolbox imported and its
            ``data_root`` set (changed in place).
        iters (int): The number of training iterations.

    Returns:
        list[str]: What was changed, for the log.
    """
    if iters < 1:
        raise UsageError(f'--smoke {iters}: give the number of training '
                         'iterations, at least 1 (e.g. --smoke 2)')
    changed = []
    loop = cfg.get('train_cfg') or ConfigDict()
    new_loop = ConfigDict(
        type='IterBasedTrainLoop',
        max_iters=iters,
        val_interval=iters,
        val_begin=1)
    if 'IterBasedTrainLoop' in str(loop.get('type')):
        new_loop = ConfigDict(loop, **new_loop)
    cfg.train_cfg = new_loop
    changed.append(f'train_cfg={dict(new_loop)}')
    cfg.setdefault('log_processor', ConfigDict())
    cfg.log_processor.by_epoch = False
    hooks = cfg.setdefault('default_hooks', ConfigDict())
    if isinstance(hooks.get('logger'), dict):
        hooks.logger.interval = 1
    if isinstance(hooks.get('checkpoint'), dict):
        hooks.checkpoint.update(by_epoch=False, interval=iters)
    changed.append('log every iteration, a checkpoint at the end')
    cfg.resume = False
    for loader in _DATALOADERS:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        loader_cfg.num_workers = 0
        loader_cfg.persistent_workers = False
        loader_cfg.pop('prefetch_factor', None)
    changed.append('num_workers=0')
    size = _dataset_length(cfg, 'train_dataloader')
    if size == 0:
        raise UsageError('--smoke: the training dataset is empty; check '
                         '--data-root and the train_dataloader.dataset '
                         'paths')
    batch = cfg.train_dataloader.batch_size
    if batch > size:
        cfg.train_dataloader.batch_size = size
        changed.append(f'train batch {batch} -> {size} (the data has '
                       f'{size} training samples)')
    return changed
