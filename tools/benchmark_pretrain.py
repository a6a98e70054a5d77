# Copyright (c) um-mae contributors. All rights reserved.
"""Compare the training cost of pre-training configs (UM-MAE vs SimMIM/MAE).

    python tools/benchmark_pretrain.py CONFIG [CONFIG ...] [--batch-size 8]
        [--input-size 256] [--device cpu|cuda] [--amp bf16|fp16]
        [--warmup 2] [--rounds 5] [--baseline simmim] [--out-dir DIR]
        [--checkout DIR ...] [--compile [--compile-backend B]] [--profile]
        [--pipeline [--data-dir DIR]] [--clock wall|cpu]

Every config's model is built in this process and trained on synthetic
images whose masks come from the config's own mask transform; the configs
take turns step by step (round-robin, ``--rounds`` rounds) and the median
step time is reported. Peak memory is measured for each config in a fresh
child process: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the
growth of the resident set (its kernel high-water mark) over building the
model and training it. Encoder tokens are counted at the input of the
backbone's first attention block. Ratios are taken to ``--baseline`` (a row
index, or the start of config names, else a part of them; with several
matches each row is compared with the match on its own backbone). Details:
``um_mae/toolkit/benchmark/measure.py``.

``--checkout DIR`` (repeatable) times the same configs with the code of
another checkout of this repository (e.g. ``git worktree add ../base
<commit>``) in the same rounds, each checkout in its own process, and adds
a speed-up table. ``--compile`` adds a row per config whose ``train_step``
runs under ``torch.compile`` as with mmengine's ``compile=True``, with the
compile time and the graphs dynamo made. ``--profile`` profiles one step
per config and splits its time by kind of operator. ``--pipeline`` measures
each config's training data pipeline on the images of ``--data-dir``
(images per second in one process = one loader worker) and the loader
workers the measured step time needs. ``--clock cpu`` times steps by the
CPU time of the process instead of the wall clock.

Writes ``benchmark.md``, ``benchmark.csv`` and ``benchmark.png`` to
``--out-dir`` and prints the markdown tables.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from um_mae.toolkit.cli import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark pre-training step time, memory and encoder '
        'tokens of several configs')
    parser.add_argument('configs', nargs='+', help='pre-training configs')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--input-size',
        type=int,
        help='image side (default: the crop size of the first config)')
    parser.add_argument(
        '--device',
        default='cuda' if _cuda() else 'cpu',
        help='cpu or cuda[:i] (default: cuda when available)')
    parser.add_argument(
        '--amp',
        choices=['bf16', 'fp16'],
        help='mixed precision (default: fp32)')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed steps per config')
    parser.add_argument(
        '--rounds', type=int, default=5, help='round-robin rounds')
    parser.add_argument(
        '--steps-per-round',
        type=int,
        default=1,
        help='timed steps per config and round')
    parser.add_argument(
        '--baseline',
        default='0',
        help='row index, or start (else part) of the config names to '
        'compare with')
    parser.add_argument(
        '--threads',
        type=int,
        help='CPU threads (default: torch\'s); use 1 on a CPU shared with '
        'other jobs')
    parser.add_argument(
        '--clock',
        choices=['wall', 'cpu'],
        default='wall',
        help='time steps by the wall clock (default) or by the CPU time of '
        'the process (with --threads 1: the work of a step, not moved by '
        'other jobs on a shared CPU; CPU only)')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='after the rounds, profile one step per config (torch.profiler)'
        ' and print the time by kind of operator')
    parser.add_argument(
        '--no-memory',
        action='store_true',
        help='skip the per-config memory measurement')
    parser.add_argument(
        '--checkout',
        action='append',
        default=[],
        metavar='DIR',
        help='root of another checkout of this repository to time in the '
        'same rounds (repeatable)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also time every config with train_step under torch.compile')
    parser.add_argument(
        '--compile-backend',
        default='inductor',
        help='torch.compile backend for --compile (default: inductor, as '
        'compile=True; aot_eager traces without generating code)')
    parser.add_argument(
        '--pipeline',
        action='store_true',
        help='measure the training data pipeline on the images of '
        '--data-dir')
    parser.add_argument(
        '--data-dir',
        default='data/demo_images',
        help='images for --pipeline (default: data/demo_images, written by '
        '`python tools/make_demo_data.py pretrain`)')
    parser.add_argument(
        '--pipeline-images',
        type=int,
        default=128,
        help='images per --pipeline measurement round')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/benchmark_pretrain',
        help='where benchmark.{md,csv,png} go')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides applied to every config')
    return parser.parse_args(argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def main(argv=None):
    args = parse_args(argv)
    from um_mae.toolkit.benchmark import (BenchmarkResult, format_ab,
                                          format_compile, format_markdown,
                                          format_pipeline, format_profile,
                                          plot_results, resolve_baselines,
                                          run_benchmark, write_csv)
    try:
        # a wrong --baseline fails before the long run
        resolve_baselines([
            BenchmarkResult(
                config=c, method='', backbone='', batch=0, input=0)
            for c in args.configs
        ], args.baseline)
        results = run_benchmark(
            args.configs,
            batch_size=args.batch_size,
            input_size=args.input_size,
            device=args.device,
            amp=args.amp,
            warmup=args.warmup,
            rounds=args.rounds,
            steps_per_round=args.steps_per_round,
            measure_memory=not args.no_memory,
            cfg_options=args.cfg_options,
            threads=args.threads,
            checkouts=args.checkout,
            compile=args.compile and args.compile_backend,
            pipeline_dir=args.data_dir if args.pipeline else None,
            pipeline_images=args.pipeline_images,
            clock=args.clock,
            profile=args.profile,
            log=lambda msg: print(msg, file=sys.stderr, flush=True))
        resolve_baselines(results, args.baseline)
    except ValueError as e:
        sys.exit(f'error: {e}')
    os.makedirs(args.out_dir, exist_ok=True)
    table = format_markdown(results, args.baseline)
    import torch
    amp = args.amp or 'fp32'
    where = args.device
    if torch.device(args.device).type == 'cpu':
        where += f' ({torch.get_num_threads()} threads)'
    title = (f'{where}, batch {args.batch_size}, {results[0].input} px, '
             f'{amp}, median of {len(results[0].step_times)} steps' +
             (', CPU time' if args.clock == 'cpu' else ''))
    sections = [
        ('speed-up of this checkout (time of the other / time of this)',
         format_ab(results)),
        (f'torch.compile (train_step as with compile=True, backend '
         f'{args.compile_backend})', format_compile(results)),
        (f'training data pipeline on {args.data_dir} (one process = one '
         'loader worker)', format_pipeline(results)),
        ('time of one profiled step by kind of operator (self time of the '
         'operators)', format_profile(results)),
    ]
    for heading, text in sections:
        if text:
            table += f'\n{heading}:\n\n{text}'
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(f'{title}\n\n{table}')
    write_csv(results, osp.join(args.out_dir, 'benchmark.csv'), args.baseline)
    plot_results(results, osp.join(args.out_dir, 'benchmark.png'),
                 args.baseline, title)
    print(title)
    print(table)
    print(f'written to {args.out_dir}/benchmark.{{md,csv,png}}')


if __name__ == '__main__':
    main()
