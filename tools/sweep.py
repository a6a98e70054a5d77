# Copyright (c) um-mae contributors. All rights reserved.
"""Plan and collect hyper-parameter sweeps (Li et al. 2021, section 2.4).

    python tools/sweep.py plan CONFIG --step lr-wd --out DIR
    python tools/sweep.py plan CONFIG --step dp --set KEY=V ... --out DIR
    python tools/sweep.py plan CONFIG --grid KEY=V1,V2 ... [--epochs N |
        --iters N] --out DIR
    bash DIR/launch.sh local|dist|slurm [train.py args]
    python tools/sweep.py collect DIR

See docs/tuning_protocol.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from um_mae.toolkit.cli import UsageError, user_errors  # noqa: E402
from um_mae.toolkit.sweep import collect, parse_grid, plan  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('plan', help='write derived configs and launch.sh')
    p.add_argument('config')
    p.add_argument('--out', required=True, help='folder of the sweep')
    p.add_argument(
        '--step',
        choices=['lr-wd', 'dp'],
        help="a step of Li et al.'s protocol: its grid and schedule length")
    p.add_argument(
        '--grid',
        action='append',
        default=[],
        metavar='KEY=V1,V2',
        help='sweep a dotted config key over values (repeatable)')
    p.add_argument(
        '--center', help='LR,WD: centre of the lr-wd grid (an expanded one)')
    p.add_argument(
        '--set',
        action='append',
        default=[],
        metavar='KEY=V',
        help='a value every run takes (e.g. the best lr / wd for dp)')
    p.add_argument('--epochs', type=int, help='schedule length (epochs)')
    p.add_argument('--iters', type=int, help='schedule length (iterations)')
    p.add_argument(
        '--metric', default='coco/bbox_mAP', help='metric to maximise')
    c = sub.add_parser('collect', help='read the runs, write CSV / figure')
    c.add_argument('sweep_dir')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with user_errors():
        try:
            if args.command == 'plan':
                _plan(args)
            else:
                _collect(args)
        except ValueError as e:
            raise UsageError(str(e)) from e


def _plan(args):
    center = None
    if args.center:
        center = tuple(float(v) for v in args.center.split(','))
        if len(center) != 2:
            raise ValueError(f'--center {args.center!r}: write LR,WD')
    fixed = {k: v[0] for k, v in parse_grid(args.set).items()}
    manifest = plan(
        args.config,
        args.out,
        step=args.step,
        grid=parse_grid(args.grid),
        center=center,
        fixed=fixed,
        epochs=args.epochs,
        iters=args.iters,
        metric=args.metric)
    out = osp.abspath(args.out)
    print(f'{len(manifest["runs"])} runs planned in {out}:')
    for run in manifest['runs']:
        print(f'  {run["name"]}: {run["config"]}')
    print(f'launch: bash {out}/launch.sh local|dist|slurm [train.py args]')
    print(f'then:   python {osp.abspath(__file__)} collect {out}')


def _collect(args):
    result = collect(args.sweep_dir)
    print(f'results: {result["csv"]}')
    if result['figure']:
        print(f'figure:  {result["figure"]}')
    for row in result['rows']:
        metric = '-' if row['metric'] is None else f'{row["metric"]:.4g}'
        print(f'  {row["name"]:<40} {row["status"]:<12} {metric}')
    if result['not_done']:
        print('not used for the best (' + str(len(result['not_done'])) +
              '): ' + ', '.join(f'{n} ({s})' for n, s in result['not_done']))
    print(result['next'])


if __name__ == '__main__':
    main()
