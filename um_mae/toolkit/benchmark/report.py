# Copyright (c) um-mae contributors. All rights reserved.
"""The benchmark's results and how they are reported: baselines, ratios,
markdown tables, CSV and bar charts.
"""
import csv
import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Union

from .measure import PROFILE_KINDS

__all__ = [
    'TABLE_COLUMNS', 'BenchmarkResult', 'paired_ratios', 'resolve_baselines',
    'format_markdown', 'format_ab', 'format_compile', 'format_pipeline',
    'format_profile', 'write_csv', 'plot_results'
]

#: columns of the markdown / CSV table, in order
TABLE_COLUMNS = ('config', 'method', 'backbone', 'batch', 'input',
                 'sec_per_step', 'enc_sec_per_step', 'images_per_s',
                 'peak_mem_mib', 'act_mem_mib', 'encoder_tokens', 'gflops',
                 'enc_gflops', 'time_ratio', 'enc_time_ratio', 'mem_ratio',
                 'act_mem_ratio', 'token_ratio', 'flops_ratio', 'baseline')

#: CSV columns after :data:`TABLE_COLUMNS`
_CSV_EXTRA = ('step_times', 'enc_step_times', 'checkout', 'compiled',
              'compile_s', 'graphs', 'graph_breaks', 'recompiles',
              'pipeline_images_per_s', 'loader_workers')


@dataclass
class BenchmarkResult:
    """Measurements of one config.

    Args:
        config (str): Config path.
        method (str): Algorithm type (``model.type``).
        backbone (str): Backbone type and arch.
        batch (int): Images per step.
        input (int): Input side in pixels.
        step_times (list[float]): Every timed step, in seconds.
        enc_step_times (list[float]): Every timed encoder-only forward and
            backward, in seconds.
        peak_mem_mib (float): Peak memory in MiB (see the module doc).
        state_mem_mib (float): Parameters, gradients and optimizer state,
            MiB.
        encoder_tokens (int): Tokens per image entering the encoder's first
            attention block.
        gflops (float): Training-step GFLOPs per image.
        enc_gflops (float): The backbone's part of ``gflops``.
        checkout (str): Label of the checkout whose code built the model
            (``--checkout``); '' when the models ran in this process.
        compiled (bool): ``train_step`` ran under ``torch.compile``.
        compile_s (float): Seconds of the first compiled step (tracing,
            compiling and running it).
        graph_breaks (int): Graph breaks dynamo reported while compiling
            the first step (-1: not compiled). Configs whose algorithms share
            ``train_step`` code share its resume functions: later rows may
            count fewer.
        graphs (int): Graphs dynamo compiled for the step.
        recompiles (int): Recompilations during the timed steps.
        pipeline_images_per_s (float): Images per second of the config's
            training pipeline in one process (one loader worker).
        profile_ms (dict[str, float]): Milliseconds of one profiled step by
            kind of operator (:func:`profile_step`).
    """
    config: str
    method: str
    backbone: str
    batch: int
    input: int
    step_times: List[float] = field(default_factory=list)
    enc_step_times: List[float] = field(default_factory=list)
    peak_mem_mib: float = float('nan')
    state_mem_mib: float = float('nan')
    encoder_tokens: int = 0
    gflops: float = float('nan')
    enc_gflops: float = float('nan')
    checkout: str = ''
    compiled: bool = False
    compile_s: float = float('nan')
    graph_breaks: int = -1
    graphs: int = -1
    recompiles: int = -1
    pipeline_images_per_s: float = float('nan')
    profile_ms: Dict[str, float] = field(default_factory=dict)

    @property
    def sec_per_step(self) -> float:
        """Median seconds per training step."""
        return statistics.median(self.step_times) if self.step_times \
            else float('nan')

    @property
    def enc_sec_per_step(self) -> float:
        """Median seconds of the encoder's forward and backward."""
        return statistics.median(self.enc_step_times) \
            if self.enc_step_times else float('nan')

    @property
    def images_per_s(self) -> float:
        """Images per second at the median step time."""
        return self.batch / self.sec_per_step

    @property
    def act_mem_mib(self) -> float:
        """Peak memory minus the model state."""
        return self.peak_mem_mib - self.state_mem_mib

    @property
    def name(self) -> str:
        """Config file name without the extension, ``+compile`` for a
        compiled step and ``@<checkout>`` for another checkout's code."""
        name = os.path.splitext(os.path.basename(self.config))[0]
        if self.compiled:
            name += '+compile'
        if self.checkout:
            name += '@' + self.checkout
        return name

    @property
    def loader_workers(self) -> float:
        """Loader workers that keep up with the measured step time."""
        if math.isnan(self.pipeline_images_per_s):
            return float('nan')
        return math.ceil(self.images_per_s / self.pipeline_images_per_s)


def paired_ratios(this: BenchmarkResult,
                  other: BenchmarkResult) -> List[float]:
    """``other / this`` step time, step by step.

    Every entry runs the same number of steps per round, so the k-th steps
    of two entries ran in the same round, seconds apart: their ratio is
    not moved by slow phases of a shared machine that last longer.
    """
    return [b / a for a, b in zip(this.step_times, other.step_times)]


def resolve_baselines(results: Sequence[BenchmarkResult],
                      baseline: Union[int, str, None] = 0) -> List[int]:
    """Index of the baseline of every row.

    Args:
        results (Sequence[BenchmarkResult]): The rows.
        baseline (int | str | None): A row index, or a part of config
            names (e.g. ``'simmim'``): the rows whose name starts with it,
            else those containing it, match. When several rows match, each
            row is compared with the matching row of the same backbone (the
            first match if none has it), preferring the same checkout and
            the same compiled state. None means row 0. Defaults to 0.

    Returns:
        list[int]: Baseline row index per row.
    """
    if baseline is None:
        baseline = 0
    if isinstance(baseline, str) and baseline.lstrip('-').isdigit():
        baseline = int(baseline)
    if isinstance(baseline, int):
        if not -len(results) <= baseline < len(results):
            raise ValueError(f'baseline index {baseline} is out of range '
                             f'for {len(results)} configs')
        return [baseline % len(results)] * len(results)
    # names starting with it first: 'mae' is the MAE config, not ummae_*
    key = baseline.lower()
    matches = [
        i for i, r in enumerate(results) if r.name.lower().startswith(key)
    ] or [i for i, r in enumerate(results) if key in r.name.lower()]
    if not matches:
        raise ValueError(f'no config name contains {baseline!r}; pass a '
                         'row index or a substring of one of '
                         f'{[r.name for r in results]}')
    out = []
    for r in results:
        # the match on the same backbone, from the same checkout and
        # compiled alike if there is one
        def rank(i):
            m = results[i]
            return (m.backbone != r.backbone, m.checkout
                    != r.checkout, m.compiled != r.compiled, i)

        out.append(min(matches, key=rank))
    return out


def _rows(results: Sequence[BenchmarkResult],
          baseline: Union[int, str, None]) -> List[dict]:
    rows = []
    for res, b in zip(results, resolve_baselines(results, baseline)):
        base = results[b]
        rows.append(
            dict(
                config=res.name,
                method=res.method,
                backbone=res.backbone,
                batch=res.batch,
                input=res.input,
                sec_per_step=res.sec_per_step,
                enc_sec_per_step=res.enc_sec_per_step,
                images_per_s=res.images_per_s,
                peak_mem_mib=res.peak_mem_mib,
                act_mem_mib=res.act_mem_mib,
                encoder_tokens=res.encoder_tokens,
                gflops=res.gflops,
                enc_gflops=res.enc_gflops,
                time_ratio=res.sec_per_step / base.sec_per_step,
                enc_time_ratio=res.enc_sec_per_step / base.enc_sec_per_step,
                mem_ratio=res.peak_mem_mib / base.peak_mem_mib,
                act_mem_ratio=res.act_mem_mib / base.act_mem_mib,
                token_ratio=res.encoder_tokens / base.encoder_tokens,
                flops_ratio=res.gflops / base.gflops,
                baseline=base.name))
    return rows


_FORMATS = dict(
    sec_per_step='{:.3f}',
    enc_sec_per_step='{:.3f}',
    images_per_s='{:.1f}',
    peak_mem_mib='{:.0f}',
    act_mem_mib='{:.0f}',
    gflops='{:.2f}',
    enc_gflops='{:.2f}',
    time_ratio='{:.2f}',
    enc_time_ratio='{:.2f}',
    mem_ratio='{:.2f}',
    act_mem_ratio='{:.2f}',
    token_ratio='{:.2f}',
    flops_ratio='{:.2f}')


def _fmt(column: str, value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return 'n/a'
        return _FORMATS.get(column, '{:.3g}').format(value)
    return str(value)


def format_markdown(results: Sequence[BenchmarkResult],
                    baseline: Union[int, str, None] = 0) -> str:
    """The results as a markdown table (columns: :data:`TABLE_COLUMNS`)."""
    rows = _rows(results, baseline)
    lines = [
        '| ' + ' | '.join(TABLE_COLUMNS) + ' |',
        '|' + '|'.join('---' for _ in TABLE_COLUMNS) + '|'
    ]
    for row in rows:
        lines.append('| ' + ' | '.join(_fmt(c, row[c])
                                       for c in TABLE_COLUMNS) + ' |')
    return '\n'.join(lines) + '\n'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join('---' for _ in header) + '|'
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def format_ab(results: Sequence[BenchmarkResult]) -> str:
    """Speed-up of this checkout over the others, per config (markdown).

    Columns: median seconds per step of both, their ratio (other / this,
    above 1 = this checkout is faster) and the median, minimum and maximum
    of the step-by-step ratios (:func:`paired_ratios`). Empty without rows
    of another checkout.
    """
    if not results:
        return ''
    own = [r for r in results if r.checkout == results[0].checkout]
    rows = []
    for other in results:
        if other.checkout == results[0].checkout:
            continue
        this = next(
            (r for r in own
             if r.config == other.config and r.compiled == other.compiled),
            None)
        if this is None:
            continue
        ratios = paired_ratios(this, other)
        name = this.name.rsplit('@', 1)[0]
        rows.append([
            name, f'{this.sec_per_step:.3f}',
            f'{other.sec_per_step:.3f} ({other.checkout})',
            f'**{other.sec_per_step / this.sec_per_step:.2f}**',
            f'{statistics.median(ratios):.2f} ({min(ratios):.2f} - '
            f'{max(ratios):.2f})'
        ])
    if not rows:
        return ''
    return _table([
        'config', f's / step {results[0].checkout}', 's / step other',
        'speed-up', 'per-step ratios: median (min - max)'
    ], rows)


def format_compile(results: Sequence[BenchmarkResult]) -> str:
    """Compiled vs eager step time and compile cost (markdown)."""
    rows = []
    for res in results:
        if not res.compiled:
            continue
        eager = next((r for r in results if r.config == res.config
                      and r.checkout == res.checkout and not r.compiled), None)
        ratio = res.sec_per_step / eager.sec_per_step if eager else \
            float('nan')
        rows.append([
            res.name, f'{eager.sec_per_step:.3f}' if eager else 'n/a',
            f'{res.sec_per_step:.3f}', f'**{ratio:.2f}**',
            f'{res.compile_s:.1f}',
            str(res.graphs),
            str(res.graph_breaks),
            str(res.recompiles)
        ])
    if not rows:
        return ''
    return _table([
        'config', 'eager s / step', 'compiled s / step', 'compiled / eager',
        'first compiled step s', 'graphs', 'graph breaks',
        'recompiles after the first step'
    ], rows)


def format_pipeline(results: Sequence[BenchmarkResult]) -> str:
    """Input pipeline speed and the loader workers a model needs."""
    rows = [[
        r.name, f'{r.pipeline_images_per_s:.1f}', f'{r.images_per_s:.1f}',
        str(r.loader_workers)
    ] for r in results if not math.isnan(r.pipeline_images_per_s)]
    if not rows:
        return ''
    return _table([
        'config', 'pipeline images / s per worker', 'model images / s',
        'loader workers needed'
    ], rows)


def format_profile(results: Sequence[BenchmarkResult]) -> str:
    """Time of a profiled step by kind of operator (markdown, % of the
    profiled total) and the rate of its matrix products."""
    rows = []
    for r in results:
        if not r.profile_ms:
            continue
        total = sum(r.profile_ms.get(k, 0.) for k in PROFILE_KINDS)
        matmul_s = r.profile_ms.get('matmul', 0.) / 1e3
        rate = r.profile_ms.get('matmul_gflop', float('nan')) / matmul_s \
            if matmul_s else float('nan')
        rows.append([r.name, f'{total:.0f}'] + [
            f'{100 * r.profile_ms.get(k, 0.) / total:.1f}'
            for k in PROFILE_KINDS
        ] + [f'{rate:.0f}'])
    if not rows:
        return ''
    return _table(['config', 'profiled ms'] +
                  [f'{k} %' for k in PROFILE_KINDS] + ['matmul GFLOP/s'], rows)


def write_csv(results: Sequence[BenchmarkResult],
              path: str,
              baseline: Union[int, str, None] = 0) -> None:
    """Write the table (columns: :data:`TABLE_COLUMNS`), the step times
    and the checkout, compile and input-pipeline fields."""
    rows = _rows(results, baseline)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(
            f, fieldnames=list(TABLE_COLUMNS) + list(_CSV_EXTRA))
        writer.writeheader()
        for row, res in zip(rows, results):
            writer.writerow(
                dict(
                    row,
                    **{k: getattr(res, k)
                       for k in _CSV_EXTRA[2:]},
                    step_times=' '.join(f'{t:.4f}' for t in res.step_times),
                    enc_step_times=' '.join(f'{t:.4f}'
                                            for t in res.enc_step_times)))


def plot_results(results: Sequence[BenchmarkResult],
                 path: str,
                 baseline: Union[int, str, None] = 0,
                 title: str = '') -> None:
    """Bar charts of step and encoder time, memory and tokens (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = _rows(results, baseline)
    labels = [
        '\n'.join([r['method'], *r['backbone'].split('-', 1)]) for r in rows
    ]
    panels = [('sec_per_step', 'time_ratio', 'seconds / step'),
              ('enc_sec_per_step', 'enc_time_ratio',
               'encoder fwd + bwd seconds / step'),
              ('encoder_tokens', 'token_ratio', 'encoder tokens / image'),
              ('peak_mem_mib', 'mem_ratio', 'peak memory (MiB)'),
              ('act_mem_mib', 'act_mem_ratio', 'peak - model state (MiB)')]
    fig, axes = plt.subplots(
        2, 3, figsize=(2 + 3.4 * len(rows), 7), squeeze=False)
    axes.flat[-1].axis('off')
    colors = plt.get_cmap('tab10').colors
    for ax, (key, ratio, label) in zip(axes.flat, panels):
        values = [float(r[key]) for r in rows]
        bars = ax.bar(
            range(len(rows)), [0 if math.isnan(v) else v for v in values],
            color=[colors[i % 10] for i in range(len(rows))])
        for bar, r in zip(bars, rows):
            ax.annotate(
                f'x{r[ratio]:.2f}' if not math.isnan(r[ratio]) else 'n/a',
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha='center',
                va='bottom',
                fontsize=8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.margins(y=0.15)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
