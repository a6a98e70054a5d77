# Copyright (c) um-mae contributors. All rights reserved.
"""Hyper-parameter sweeps, and the tuning protocol of Li et al. 2021.

Li, Xie, Chen, Dollar, He, Girshick, "Benchmarking Detection Transfer
Learning with Vision Transformers", section 2.4, tune every initialization
before comparing them:

1. ``lr-wd``: drop path 0, a 3 x 3 grid of lr x wd centred at (1.6e-4,
   0.1) with halved and doubled values, ViT-B, 25 epochs (100 from random
   init); when the best is on the grid's boundary, expand the grid;
2. ``dp``: drop path from {0, 0.1, 0.2, 0.3} at the best lr / wd, 50 epochs
   (random init: 100);
3. ViT-L takes ViT-B's lr / wd and tunes dp as in step 2.

:func:`plan` writes one derived config per grid point (it inherits the
config and overrides the swept keys and the schedule length only), a
``launch.sh`` with the ``tools/train.py``, ``tools/dist_train.sh`` and
``tools/slurm_train.sh`` commands, and ``sweep.json``; :func:`collect`
reads each run's metric from its work dir (mmengine's ``scalars.json``),
writes ``results.csv`` and a heat map / curve, and says the next step.
"""
import glob
import itertools
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ['PROTOCOL', 'plan', 'collect', 'parse_grid']

LR = 'optim_wrapper.optimizer.lr'
WD = 'optim_wrapper.optimizer.weight_decay'
DP = 'model.backbone.drop_path_rate'
SHORT = {LR: 'lr', WD: 'wd', DP: 'dp'}
# Li et al. section 2.4: the steps, their grids and schedule lengths
PROTOCOL = {
    'lr-wd':
    dict(
        center=(1.6e-4, 0.1),  # (1): "centered at lr, wd = 1.6e-4, 0.1"
        fixed={DP: 0.0},  # (1): "we fix dp at 0.0"
        epochs=25,  # (1): "a 25 epoch schedule"
        random_epochs=100),  # (1): "or 100 epochs when ... from scratch"
    'dp':
    dict(
        values=(0.0, 0.1, 0.2, 0.3),  # (2): "dp from {0.0, 0.1, 0.2, 0.3}"
        epochs=50,  # (2): "a 50 epoch schedule"
        random_epochs=100),  # (2): "forced to use 100 epochs"
}
SCRIPT_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')


def parse_grid(items: Sequence[str]) -> Dict[str, List[float]]:
    """``['key=v1,v2', ...]`` -> ``{key: [v1, v2]}`` (numbers or text)."""
    grid = {}
    for item in items:
        key, sep, values = item.partition('=')
        if not sep or not values:
            raise ValueError(f'--grid {item!r}: write KEY=V1,V2,... (e.g. '
                             f'{LR}=8e-5,1.6e-4)')
        grid[key] = [_number(v) for v in values.split(',')]
    return grid


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and 'e' not in text.lower() \
        and '.' not in text else value


def _lookup(cfg, key: str):
    node = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f'{key} is not a key of the config ({part!r} '
                             'missing); sweep keys are dotted config keys, '
                             f'e.g. {LR}')
        node = node[part]
    return node


def _nested(flat: Dict[str, object]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _schedule(cfg, epochs: Optional[int], iters: Optional[int]) -> dict:
    """The overrides that set the schedule length (loop and schedulers)."""
    loop = cfg.train_cfg
    by_epoch = 'max_epochs' in loop
    if epochs is None and iters is None:
        return {}
    if by_epoch and epochs is None or not by_epoch and iters is None:
        unit = 'epoch' if by_epoch else 'iter'
        raise ValueError(f"the config's train loop is {unit}-based: set the "
                         f'length with --{unit}s')
    old = loop.max_epochs if by_epoch else loop.max_iters
    new = epochs if by_epoch else iters
    out = {}
    dataset = cfg.train_dataloader.get('dataset', {})
    if by_epoch and dataset.get('type') == 'RepeatDataset':
        # the protocol counts epochs of the dataset itself (Li et al.: COCO
        # epochs); a config repeating it N times runs epochs / N, or the
        # dataset once when epochs is no multiple of N
        times = dataset.get('times', 1)
        if epochs % times == 0:
            new = epochs // times
        else:
            out['train_dataloader'] = {'dataset': {'times': 1}}
    out['train_cfg'] = {('max_epochs' if by_epoch else 'max_iters'): new}
    if loop.get('val_interval', 1) > new:
        out['train_cfg']['val_interval'] = new
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    changed = []
    for sched in schedulers:
        sched = dict(sched)
        # the schedulers that span the run (by its unit) end with it
        if sched.get('by_epoch', True) == by_epoch:
            for key in ('end', 'T_max'):
                if sched.get(key) == old:
                    sched[key] = new
        changed.append(sched)
    if changed:
        out['param_scheduler'] = changed
    return out


def _fmt(value) -> str:
    return f'{value:g}' if isinstance(value, float) else str(value)


def _run_name(values: Dict[str, object]) -> str:
    return '_'.join(f'{SHORT.get(k, k.split(".")[-1])}{_fmt(v)}'
                    for k, v in values.items())


def plan(config: str,
         out_dir: str,
         step: Optional[str] = None,
         grid: Optional[Dict[str, list]] = None,
         center: Optional[Tuple[float, float]] = None,
         fixed: Optional[Dict[str, object]] = None,
         epochs: Optional[int] = None,
         iters: Optional[int] = None,
         metric: str = 'coco/bbox_mAP') -> dict:
    """Write the derived configs, ``launch.sh`` and ``sweep.json``.

    Args:
        config (str): The config to tune.
        out_dir (str): Folder for the sweep (configs, launch file, runs).
        step (str, optional): A step of :data:`PROTOCOL` (``'lr-wd'``,
            ``'dp'``): its grid and schedule length. Defaults to None.
        grid (dict, optional): ``{dotted key: values}`` swept as a
            Cartesian product (with ``step``: added to / replacing its
            grid). Defaults to None.
        center (tuple, optional): ``(lr, wd)`` centre of the ``lr-wd``
            grid (an expanded grid). Defaults to Li et al.'s.
        fixed (dict, optional): ``{dotted key: value}`` set in every run
            (e.g. the best lr / wd in the ``dp`` step). Defaults to None.
        epochs (int, optional): Schedule length of an epoch-based config;
            the step's by default. Defaults to None.
        iters (int, optional): Schedule length of an iteration-based config
            (demos). Defaults to None.
        metric (str): The metric to maximise. Defaults to
            ``'coco/bbox_mAP'``.

    Returns:
        dict: The manifest written to ``sweep.json``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    random_init = 'pretrained' in cfg and cfg.pretrained is None
    sweep: Dict[str, list] = {}
    fixed = dict(fixed or {})
    if step is not None:
        if step not in PROTOCOL:
            raise ValueError(f'--step {step!r}; choose one of '
                             f'{", ".join(PROTOCOL)}')
        proto = PROTOCOL[step]
        if step == 'lr-wd':
            lr, wd = center or proto['center']
            sweep = {LR: [lr / 2, lr, lr * 2], WD: [wd / 2, wd, wd * 2]}
        else:
            sweep = {DP: list(proto['values'])}
        for key, value in proto.get('fixed', {}).items():
            fixed.setdefault(key, value)
        if epochs is None and iters is None:
            epochs = proto['random_epochs' if random_init else 'epochs']
    sweep.update(grid or {})
    if not sweep:
        raise ValueError('nothing to sweep: give --step or --grid')
    for key in list(sweep) + list(fixed):
        _lookup(cfg, key)
    overrides = _schedule(cfg, epochs, iters)

    out_dir = osp.abspath(out_dir)
    os.makedirs(osp.join(out_dir, 'configs'), exist_ok=True)
    name = osp.splitext(osp.basename(config))[0]
    runs = []
    for combo in itertools.product(*sweep.values()):
        values = dict(zip(sweep, combo))
        run = _run_name(values)
        path = osp.join(out_dir, 'configs', f'{name}_{run}.py')
        base = osp.relpath(osp.abspath(config), osp.dirname(path))
        lines = [
            f'# {run}: {step or "grid"} sweep of {name}', f'_base_ = {base!r}',
            ''
        ]
        body = _nested({**fixed, **values})
        for key, value in list(body.items()) + list(overrides.items()):
            if key in body and key in overrides:
                raise ValueError(f'{key} is both swept and set by the '
                                 'schedule length')
            lines.append(f'{key} = {value!r}')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        runs.append(
            dict(
                name=run,
                config=path,
                work_dir=osp.join(out_dir, 'runs', run),
                values=values))
    manifest = dict(
        config=osp.abspath(config),
        step=step,
        keys=list(sweep),
        fixed=fixed,
        epochs=epochs,
        iters=iters,
        metric=metric,
        runs=runs)
    with open(osp.join(out_dir, 'sweep.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    _write_launch(out_dir, manifest)
    return manifest


def _write_launch(out_dir: str, manifest: dict) -> None:
    tools = SCRIPT_DIR
    lines = [
        '#!/usr/bin/env bash',
        f'# {len(manifest["runs"])} runs of '
        f'{osp.basename(manifest["config"])} '
        f'({manifest["step"] or "grid"}); extra arguments go to train.py:',
        '#   bash launch.sh local [--fp32 ...]    # tools/train.py, in turn',
        '#   GPUS=8 bash launch.sh dist           # tools/dist_train.sh',
        '#   PARTITION=p GPUS=32 bash launch.sh slurm  # tools/slurm_train.sh',
        '# A run that fails leaves sweep_failed in its work dir; then',
        f'#   python {tools}/sweep.py collect {out_dir}',
        'set -uo pipefail',
        'MODE=${1:-local}',
        'shift || true',
        f'TOOLS={tools}',
        'run() {',
        '  local name=$1 cfg=$2 dir=$3; shift 3',
        '  mkdir -p "$dir"; rm -f "$dir/sweep_failed"',
        '  case $MODE in',
        '    local) ${PYTHON:-python} "$TOOLS/train.py" "$cfg" --work-dir '
        '"$dir" "$@" ;;',
        '    dist) bash "$TOOLS/dist_train.sh" "$cfg" "${GPUS:-8}" '
        '--work-dir "$dir" "$@" ;;',
        '    slurm) bash "$TOOLS/slurm_train.sh" "$PARTITION" "$name" "$cfg" '
        '"$dir" "$@" ;;',
        '    *) echo "usage: bash launch.sh local|dist|slurm [args]" >&2; '
        'exit 2 ;;',
        '  esac || echo "exit $?" > "$dir/sweep_failed"',
        '}',
    ]
    for run in manifest['runs']:
        lines.append(f'run {run["name"]} {run["config"]} {run["work_dir"]} '
                     '"$@"')
    path = osp.join(out_dir, 'launch.sh')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(path, 0o755)


def _read_run(run: dict, metric: str, length: Optional[int]) -> dict:
    """Status and metric of one run from its work dir."""
    work_dir = run['work_dir']
    if not osp.isdir(work_dir):
        return dict(status='not started', metric=None)
    if osp.exists(osp.join(work_dir, 'sweep_failed')):
        return dict(status='failed', metric=None)
    values = []  # (step, value) of every evaluation
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if metric in entry:
                    values.append((entry.get('step'), entry[metric]))
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    failed = any('Traceback' in open(p).read() for p in logs[-1:])
    last = osp.join(work_dir, 'last_checkpoint')
    finished = length is not None and osp.exists(last) and osp.basename(
        open(last).read().strip()) in (f'epoch_{length}.pth',
                                       f'iter_{length}.pth')
    if not values:
        status = 'failed' if failed else (
            f'finished without {metric}' if finished else 'running')
        return dict(status=status, metric=None)
    step, value = values[-1]
    # mmengine logs the metric of an iteration-based run with step 0: the
    # final checkpoint tells a finished run
    done = finished or length is None or step == length
    if not done:
        return dict(status='failed' if failed else 'running', metric=value)
    return dict(status='done', metric=value)


def _neighbours(values: List[float], best: float) -> Optional[List[float]]:
    """The grid of one key re-centred on a boundary best (same ratio)."""
    values = sorted(values)
    if len(values) < 2 or best not in (values[0], values[-1]):
        return None
    if all(v > 0 for v in values):
        ratio = values[1] / values[0]
        return [best / ratio, best, best * ratio]
    diff = values[1] - values[0]
    return [best - diff, best, best + diff]


def collect(sweep_dir: str) -> dict:
    """Read every run, write ``results.csv`` and a figure, say what next.

    Args:
        sweep_dir (str): The folder :func:`plan` wrote.

    Returns:
        dict: ``rows`` (one per run: name, status, values, metric),
        ``best`` (the best finished run or None), ``not_done`` (runs
        excluded from the best, with their status), ``boundary`` (the keys
        whose best is on the grid's edge), ``next`` (the protocol's next
        step, a sentence with the command), ``csv`` and ``figure`` paths.
    """
    with open(osp.join(sweep_dir, 'sweep.json')) as f:
        manifest = json.load(f)
    metric, keys = manifest['metric'], manifest['keys']
    length = manifest['epochs'] or manifest['iters']
    rows = []
    for run in manifest['runs']:
        rows.append(
            dict(
                name=run['name'],
                values=run['values'],
                **_read_run(run, metric, length)))
    csv_path = osp.join(sweep_dir, 'results.csv')
    with open(csv_path, 'w') as f:
        f.write(','.join(['run', 'status'] + keys + [metric]) + '\n')
        for row in rows:
            cells = [row['name'], row['status']]
            cells += [_fmt(row['values'][k]) for k in keys]
            cells.append('' if row['metric'] is None else f'{row["metric"]}')
            f.write(','.join(cells) + '\n')
    done = [r for r in rows if r['status'] == 'done']
    best = max(done, key=lambda r: r['metric']) if done else None
    figure = _figure(sweep_dir, rows, keys, metric)
    boundary = {}
    if best is not None:
        for key in keys:
            grid = [r['values'][key] for r in rows]
            expanded = _neighbours(sorted(set(grid)), best['values'][key])
            if expanded is not None:
                boundary[key] = expanded
    return dict(
        rows=rows,
        best=best,
        not_done=[(r['name'], r['status']) for r in rows
                  if r['status'] != 'done'],
        boundary=boundary,
        next=_next_step(manifest, best, boundary),
        csv=csv_path,
        figure=figure)


def _next_step(manifest: dict, best: Optional[dict], boundary: dict) -> str:
    config, step = manifest['config'], manifest['step']
    tool = f'python {osp.join(SCRIPT_DIR, "sweep.py")} plan {config}'
    if best is None:
        return 'no run has finished: nothing to choose yet'
    values = best['values']
    found = ', '.join(f'{k}={_fmt(v)}' for k, v in values.items())
    length = ''
    if manifest['epochs'] is not None:
        length = f' --epochs {manifest["epochs"]}'
    elif manifest['iters'] is not None:
        length = f' --iters {manifest["iters"]}'
    if boundary:
        edges = ', '.join(boundary)
        if step == 'lr-wd':
            lr = boundary.get(LR, [None, values[LR]])[1]
            wd = boundary.get(WD, [None, values[WD]])[1]
            cmd = f'{tool} --step lr-wd --center {_fmt(lr)},{_fmt(wd)}'
        else:
            grids = ' '.join(
                f'--grid {k}={",".join(_fmt(v) for v in boundary.get(k, [values[k]]))}'  # noqa: E501
                for k in manifest['keys'])
            cmd = f'{tool} {grids}{length}'
        return (f'best {found} is on the boundary of the grid ({edges}): '
                f'expand the search (Li et al. 2.4 (1)):\n  {cmd} --out '
                f'{manifest["runs"][0]["work_dir"].rsplit("/runs/", 1)[0]}'
                '-expanded')
    if step == 'lr-wd':
        sets = ' '.join(f'--set {k}={_fmt(values[k])}' for k in (LR, WD))
        return (f'best {found} (a local optimum): next, drop path at these '
                f'lr / wd (Li et al. 2.4 (2)):\n  {tool} --step dp {sets} '
                '--out <dir>')
    if step == 'dp':
        return (f'best {found}: set it in the config; for ViT-L run the dp '
                'step on the ViT-L config with the ViT-B lr / wd (Li et al. '
                '2.4 (3))')
    return f'best {found}'


def _figure(sweep_dir: str, rows: List[dict], keys: List[str],
            metric: str) -> Optional[str]:
    """A heat map (two swept keys) or a curve (one) of the finished runs."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    done = [r for r in rows if r['metric'] is not None]
    if len(keys) not in (1, 2):
        return None
    path = osp.join(sweep_dir, 'results.png')
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(keys) == 2:
        xs = sorted({r['values'][keys[1]] for r in rows})
        ys = sorted({r['values'][keys[0]] for r in rows})
        grid = [[math.nan] * len(xs) for _ in ys]
        for r in done:
            grid[ys.index(r['values'][keys[0]])][xs.index(
                r['values'][keys[1]])] = r['metric']
        image = ax.imshow(grid, cmap='viridis', origin='lower')
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                text = 'n/a' if math.isnan(value) else f'{value:.3g}'
                ax.text(j, i, text, ha='center', va='center', color='w')
        ax.set_xticks(range(len(xs)), [_fmt(x) for x in xs])
        ax.set_yticks(range(len(ys)), [_fmt(y) for y in ys])
        ax.set_xlabel(SHORT.get(keys[1], keys[1]))
        ax.set_ylabel(SHORT.get(keys[0], keys[0]))
        fig.colorbar(image, label=metric)
    else:
        pts = sorted((r['values'][keys[0]], r['metric']) for r in done)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], 'o-')
        ax.set_xlabel(SHORT.get(keys[0], keys[0]))
        ax.set_ylabel(metric)
    ax.set_title(osp.basename(osp.normpath(sweep_dir)))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
