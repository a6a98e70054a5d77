# Copyright (c) um-mae contributors. All rights reserved.
"""The benchmark's driver: build each config's entry, time the entries
round-robin, and run other checkouts' code in worker processes (A/B).

What is measured and how: :mod:`.measure`; the tables: :mod:`.report`.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config

from ..pretrain_inputs import (build_synthetic_batch, config_input_size,
                               load_pretrain_config, quiet_logger)
from .measure import (EncoderInputs, EncoderTokenCounter,
                      build_model_and_optimizer, check_compile_support,
                      compile_train_step, dynamo_counts, encoder_step,
                      flop_counter, measure_peak_memory, measure_pipeline,
                      profile_ops, set_clock, train_step)
from .report import BenchmarkResult

__all__ = [
    'build_entry', 'entry_step', 'entry_encoder_step', 'profile_step',
    'time_interleaved', 'entry_recompiles', 'REPO_ROOT', 'checkout_labels',
    'checkout_config', 'CheckoutWorker', 'serve_worker', 'run_benchmark'
]


def _backbone_name(cfg: Config) -> str:
    bb = cfg.model.get('backbone', {})
    arch = bb.get('arch')
    arch = arch if isinstance(arch, str) else \
        ('custom' if arch is not None else '')
    return f"{bb.get('type', '?')}-{arch}" if arch else bb.get('type', '?')


def entry_step(entry: dict, amp: Optional[str] = None) -> float:
    """One timed training step of an entry of :func:`time_interleaved`.

    Args:
        entry (dict): With ``model``, ``optim_wrapper`` and ``batches``
            (used in turn; optionally ``amp``), or with a ``step``
            callable (e.g. a step in a :class:`CheckoutWorker`).
        amp (str, optional): Used when the entry has no ``amp``.
            Defaults to None.

    Returns:
        float: Seconds.
    """
    if 'step' in entry:
        return entry['step']()
    count = entry.get('count', 0)
    entry['count'] = count + 1
    data = entry['batches'][count % len(entry['batches'])]

    def step():
        return train_step(entry['model'], entry['optim_wrapper'], data,
                          entry.get('amp', amp))

    if entry.get('compile_stats') is not None:
        return _compiled_step(entry, step)
    return step()


def entry_encoder_step(entry: dict,
                       amp: Optional[str] = None) -> Optional[float]:
    """The encoder-only step of an entry; None if it has none."""
    if entry.get('enc_step') is not None:
        return entry['enc_step']()
    if entry.get('encoder_inputs') is None:
        return None
    return encoder_step(entry['model'], entry['encoder_inputs'],
                        entry.get('amp', amp))


def profile_step(entry: dict, amp: Optional[str] = None) -> Dict[str, float]:
    """:func:`~.measure.profile_ops` of one training step of an entry.

    Args:
        entry (dict): See :func:`entry_step`; not a compiled one.
        amp (str, optional): See :func:`~.measure.train_step`.
            Defaults to None.

    Returns:
        dict[str, float]: See :func:`~.measure.profile_ops`.
    """
    return profile_ops(lambda: entry_step(entry, amp))


def time_interleaved(
        entries: Sequence[dict],
        warmup: int = 2,
        rounds: int = 5,
        steps_per_round: int = 1,
        amp: Optional[str] = None,
        log=None) -> Tuple[Dict[int, List[float]], Dict[int, List[float]]]:
    """Warm up every entry, then time them round-robin.

    Args:
        entries (Sequence[dict]): Each with ``model``, ``optim_wrapper``
            and ``batches`` (a list of batches used in turn); optionally
            ``encoder_inputs`` (:class:`EncoderInputs`): then every round
            also times :func:`encoder_step` once per entry. Or with
            ``step`` (and optionally ``enc_step``) callables returning
            seconds (see :func:`entry_step`).
        warmup (int): Untimed steps per entry first. Defaults to 2.
        rounds (int): Round-robin rounds. Defaults to 5.
        steps_per_round (int): Timed steps per entry and round.
            Defaults to 1.
        amp (str, optional): See :func:`train_step`. Defaults to None.
        log (callable, optional): Progress printer. Defaults to None.

    Returns:
        tuple[dict, dict]: Training-step and encoder-step times, each
        ``{entry index: [seconds, ...]}``.
    """
    for e in entries:
        for _ in range(warmup):
            entry_step(e, amp)
        if warmup:
            entry_encoder_step(e, amp)
    times = {i: [] for i in range(len(entries))}
    enc_times = {i: [] for i in range(len(entries))}
    for r in range(rounds):
        for i, e in enumerate(entries):
            for _ in range(steps_per_round):
                times[i].append(entry_step(e, amp))
            enc = entry_encoder_step(e, amp)
            if enc is not None:
                enc_times[i].append(enc)
        if log is not None:
            log(f'round {r + 1}/{rounds}: ' +
                ', '.join(f'{times[i][-1]:.3f}s' for i in range(len(entries))))
    return times, enc_times


def _compiled_step(entry: dict, step) -> float:
    stats = entry['compile_stats']
    graphs, breaks = dynamo_counts()
    seconds = step()
    now = dynamo_counts()
    if entry.get('compiled_steps', 0) == 0:
        stats.graphs, stats.breaks = now[0] - graphs, now[1] - breaks
    else:
        stats.recompiles += now[0] - graphs
    entry['compiled_steps'] = entry.get('compiled_steps', 0) + 1
    return seconds


def entry_recompiles(entry: dict) -> int:
    """Graphs compiled after the first step of a compiled entry."""
    if entry.get('recompiles') is not None:
        return entry['recompiles']()
    stats = entry.get('compile_stats')
    return -1 if stats is None else stats.recompiles


# ----------------------------------------------------------------------
# other checkouts (A/B)

#: ``um_mae/toolkit`` of the checkout this module belongs to
_UTILS_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: root of the checkout this module belongs to
REPO_ROOT = osp.dirname(osp.dirname(_UTILS_DIR))

# A worker loads this checkout's ``um_mae/toolkit`` by path, as a package of
# another name (not through the ``um_mae`` package, so that ``um_mae`` is
# the worker's checkout while the harness is this one); keep the benchmark
# and ``pretrain_inputs`` free of absolute imports from ``um_mae``.
_WORKER_BOOT = ('import importlib, importlib.util, os, sys\n'
                'spec = importlib.util.spec_from_file_location('
                '"um_mae_benchmark_worker", '
                'os.path.join(sys.argv[1], "__init__.py"), '
                'submodule_search_locations=[sys.argv[1]])\n'
                'mod = importlib.util.module_from_spec(spec)\n'
                'sys.modules[spec.name] = mod\n'
                'spec.loader.exec_module(mod)\n'
                'importlib.import_module(spec.name + ".benchmark.driver")'
                '.serve_worker(sys.argv[2])\n')


def checkout_labels(checkouts: Sequence[str]) -> List[Tuple[str, str]]:
    """``(root, label)`` of this checkout and of ``checkouts``.

    The label is the short commit (``-dirty`` with uncommitted changes to
    tracked files), else the folder name; repeated labels get ``#i``.

    Raises:
        ValueError: If a checkout has no ``um_mae`` package.
    """
    roots = [REPO_ROOT]
    for path in checkouts:
        root = osp.abspath(path)
        if not osp.isfile(osp.join(root, 'um_mae', '__init__.py')):
            raise ValueError(
                f'checkout {path!r} has no um_mae package; pass the root of '
                'a checkout of this repository, e.g. one made by `git '
                'worktree add ../um-mae-base <commit>`')
        roots.append(root)
    out, seen = [], set()
    for i, root in enumerate(roots):
        label = _git_label(root) or osp.basename(root)
        if label in seen:
            label = f'{label}#{i}'
        seen.add(label)
        out.append((root, label))
    return out


def _git_label(root: str) -> Optional[str]:
    try:
        commit = subprocess.run(
            ['git', '-C', root, 'rev-parse', '--short', 'HEAD'],
            capture_output=True,
            text=True,
            check=True).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', root, 'status', '--porcelain', '-uno'],
            capture_output=True,
            text=True,
            check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ('-dirty' if dirty else '')


def checkout_config(path: str, root: str) -> str:
    """The copy of config ``path`` (of this checkout) in checkout ``root``.

    Paths outside this checkout are used as they are.
    """
    rel = osp.relpath(osp.abspath(path), REPO_ROOT)
    if rel.startswith(os.pardir):
        return osp.abspath(path)
    mapped = osp.join(root, rel)
    if not osp.isfile(mapped):
        raise ValueError(f'config {rel} does not exist in checkout {root}; '
                         'benchmark configs that both checkouts have')
    return mapped


class CheckoutWorker:
    """A child process that builds and steps models with another checkout.

    The child imports ``um_mae`` (models, configs' custom imports) from
    ``root`` and runs this checkout's harness (:func:`build_entry`,
    :func:`entry_step`, ...), so that two checkouts are timed by the same
    code. It answers one JSON line per request on its stdout; everything
    the libraries print goes to stderr.

    Args:
        root (str): Root of the checkout.
        label (str): Name of the checkout in the results.
        threads (int, optional): CPU threads of the child.
        clock (str): See :func:`set_clock`. Defaults to ``'wall'``.
        log (callable, optional): Progress printer.
    """

    def __init__(self,
                 root: str,
                 label: str,
                 threads: Optional[int] = None,
                 clock: str = 'wall',
                 log=None) -> None:
        self.root, self.label = root, label
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            p for p in (root, env.get('PYTHONPATH')) if p)
        self.proc = subprocess.Popen(
            [sys.executable, '-c', _WORKER_BOOT, _UTILS_DIR, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
            text=True)
        info = self.call('setup', threads=threads, clock=clock)
        if log is not None:
            log(f'worker {label}: um_mae from {info["um_mae"]}')

    def call(self, cmd: str, **kwargs):
        """Send one request, return the answer; errors as ValueError."""
        try:
            self.proc.stdin.write(json.dumps(dict(cmd=cmd, **kwargs)) + '\n')
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        line = self.proc.stdout.readline()
        if not line:
            raise ValueError(f'the benchmark worker of {self.label} exited '
                             f'(code {self.proc.wait()}); see its messages '
                             'above')
        answer = json.loads(line)
        if isinstance(answer, dict) and 'error' in answer:
            raise ValueError(f'{self.label}: {answer["error"]}')
        return answer

    def build(self, *args) -> Tuple[dict, BenchmarkResult]:
        """:func:`build_entry` in the child; returns a proxy entry."""
        fields = self.call('build', args=list(args))
        index = fields.pop('index')
        entry = dict(
            step=lambda: self.call('step', index=index),
            enc_step=(None if fields['compiled'] else
                      lambda: self.call('enc_step', index=index)),
            recompiles=lambda: self.call('recompiles', index=index),
            profile=lambda: self.call('profile', index=index))
        return entry, BenchmarkResult(**fields)

    def close(self) -> None:
        """End the child."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def serve_worker(root: str) -> None:
    """Child side of :class:`CheckoutWorker` (reads requests on stdin)."""
    replies = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)
    entries: List[dict] = []
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = _serve(request, entries, root)
        except Exception as e:  # noqa: BLE001 - reported to the parent
            answer = dict(error=f'{type(e).__name__}: {e}')
        replies.write(json.dumps(answer) + '\n')


def _serve(request: dict, entries: List[dict], root: str):
    cmd = request['cmd']
    if cmd == 'setup':
        quiet_logger()
        set_clock(request['clock'])
        if request.get('threads'):
            torch.set_num_threads(request['threads'])
        import um_mae
        where = osp.dirname(osp.dirname(osp.abspath(um_mae.__file__)))
        if osp.realpath(where) != osp.realpath(root):
            raise ValueError(f'um_mae was imported from {where}, not from '
                             f'the checkout {root}')
        return dict(um_mae=where)
    if cmd == 'build':
        entry, result = build_entry(*request['args'])
        entries.append(entry)
        return dict(asdict(result), index=len(entries) - 1)
    entry = entries[request['index']]
    if cmd == 'step':
        return entry_step(entry)
    if cmd == 'enc_step':
        return entry_encoder_step(entry)
    if cmd == 'recompiles':
        return entry_recompiles(entry)
    if cmd == 'profile':
        return profile_step(entry)
    raise ValueError(f'unknown request {cmd!r}')


# ----------------------------------------------------------------------
# driver


def build_entry(path: str,
                batch_size: int,
                input_size: Optional[int] = None,
                device: str = 'cpu',
                amp: Optional[str] = None,
                cfg_options: Optional[dict] = None,
                compile: Union[bool, str] = False,
                log=None) -> Tuple[dict, BenchmarkResult]:
    """Build one config's model and measure what does not need timing.

    A first (untimed, eager) step counts the encoder tokens and the
    FLOPs and captures the encoder's inputs. With ``compile`` the model's
    ``train_step`` is then wrapped in ``torch.compile`` as mmengine's
    ``Runner(compile=True)`` does, and the first compiled step is timed as
    the compile time; its encoder is not timed separately.

    Args:
        path (str): Config path.
        batch_size (int): Images per step.
        input_size (int, optional): Image side; None uses the config's
            crop. Defaults to None.
        device (str): Where to run. Defaults to ``'cpu'``.
        amp (str, optional): See :func:`train_step`. Defaults to None.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        compile (bool | str): Compile ``train_step``; a string names the
            backend (True: ``'inductor'``). Defaults to False.
        log (callable, optional): Progress printer. Defaults to None.

    Returns:
        tuple[dict, BenchmarkResult]: An entry for
        :func:`time_interleaved` and the result (without times).
    """
    cfg = load_pretrain_config(path, input_size, cfg_options)
    size = input_size or config_input_size(cfg)
    torch.manual_seed(0)
    model, optim_wrapper = build_model_and_optimizer(cfg, device, amp)
    batches = [
        build_synthetic_batch(cfg, batch_size, size, seed=s) for s in range(2)
    ]
    counter = EncoderTokenCounter(model.backbone)
    enc_inputs = EncoderInputs(model.backbone)
    with flop_counter() as flops:
        train_step(model, optim_wrapper, batches[0], amp)
    counter.remove()
    enc_inputs.remove()
    per_module = flops.get_flop_counts()
    enc_flops = sum(
        per_module.get(f'{type(model).__name__}.backbone', {}).values())
    result = BenchmarkResult(
        config=path,
        method=str(cfg.model.type),
        backbone=_backbone_name(cfg),
        batch=batch_size,
        input=size,
        encoder_tokens=counter.tokens or 0,
        gflops=flops.get_total_flops() / batch_size / 1e9,
        enc_gflops=enc_flops / batch_size / 1e9)
    entry = dict(
        model=model,
        optim_wrapper=optim_wrapper,
        batches=batches,
        amp=amp,
        encoder_inputs=enc_inputs)
    if compile:
        entry['encoder_inputs'] = None
        result.compiled = True
        entry['compile_stats'] = compile_train_step(
            model, compile if isinstance(compile, str) else 'inductor')
        start = time.perf_counter()  # wall clock: inductor compiles in
        entry_step(entry)  # worker processes
        result.compile_s = time.perf_counter() - start
        result.graphs = entry['compile_stats'].graphs
        result.graph_breaks = entry['compile_stats'].breaks
    if log is not None:
        log(f'built {result.name}: {result.encoder_tokens} encoder tokens, '
            f'{result.gflops:.2f} GFLOPs per image' +
            (f', first compiled step {result.compile_s:.1f} s, '
             f'{result.graphs} graphs, {result.graph_breaks} graph breaks'
             if compile else ''))
    return entry, result


def run_benchmark(configs: Sequence[str],
                  batch_size: int = 8,
                  input_size: Optional[int] = None,
                  device: str = 'cpu',
                  amp: Optional[str] = None,
                  warmup: int = 2,
                  rounds: int = 5,
                  steps_per_round: int = 1,
                  measure_memory: bool = True,
                  cfg_options: Optional[dict] = None,
                  threads: Optional[int] = None,
                  checkouts: Sequence[str] = (),
                  compile: Union[bool, str] = False,
                  pipeline_dir: Optional[str] = None,
                  pipeline_images: int = 128,
                  clock: str = 'wall',
                  profile: bool = False,
                  log=None) -> List[BenchmarkResult]:
    """Benchmark pre-training configs against each other.

    Args:
        configs (Sequence[str]): Config paths.
        batch_size (int): Images per step. Defaults to 8.
        input_size (int, optional): Image side; None uses the crop size of
            the first config's pipeline. Defaults to None.
        device (str): ``'cpu'`` or ``'cuda[:i]'``. Defaults to ``'cpu'``.
        amp (str, optional): ``'bf16'``, ``'fp16'`` or None.
            Defaults to None.
        warmup (int): Untimed steps per config. Defaults to 2.
        rounds (int): Round-robin rounds. Defaults to 5.
        steps_per_round (int): Timed steps per config and round.
            Defaults to 1.
        measure_memory (bool): Measure peak memory (one child process per
            config of this checkout, eager). Defaults to True.
        cfg_options (dict, optional): Overrides for every config.
            Defaults to None.
        threads (int, optional): CPU threads (``torch.set_num_threads``)
            here and in the child processes; None keeps torch's default.
            On a CPU shared with other jobs 1 avoids OpenMP threads waiting
            for each other. Defaults to None.
        checkouts (Sequence[str]): Roots of other checkouts of this
            repository (e.g. a ``git worktree`` of an older commit): their
            code builds the same configs (their own copies of the config
            files) and all of them take turns in the same rounds. Each
            checkout, this one included, then runs in its own
            :class:`CheckoutWorker` process. Defaults to ().
        compile (bool | str): Also time every config with ``train_step``
            under ``torch.compile`` (extra rows, see :func:`build_entry`);
            a string names the backend (True: ``'inductor'``).
            Defaults to False.
        pipeline_dir (str, optional): Folder of images: measure every
            config's training data pipeline on them
            (:func:`measure_pipeline`). Defaults to None.
        pipeline_images (int): Images per pipeline measurement round.
            Defaults to 128.
        clock (str): ``'wall'`` or ``'cpu'`` (see :func:`set_clock`).
            Defaults to ``'wall'``.
        profile (bool): Profile one more step of every eager row after
            the rounds (:func:`profile_step`). Defaults to False.
        log (callable, optional): Progress printer. Defaults to None.

    Returns:
        list[BenchmarkResult]: One per config (and checkout, compiled
        variant), this checkout's first.
    """
    if not configs:
        raise ValueError('no configs given; pass at least one config path')
    if batch_size < 1 or rounds < 1 or steps_per_round < 1 or warmup < 0:
        raise ValueError(
            f'batch_size={batch_size}, rounds={rounds}, steps_per_round='
            f'{steps_per_round} must be >= 1 and warmup={warmup} >= 0')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not '
                         "available; use --device cpu")
    if compile:
        compile = compile if isinstance(compile, str) else 'inductor'
        check_compile_support(device, compile)
    for path in configs:
        if not os.path.isfile(path):
            raise ValueError(f'config {path!r} does not exist; pass a file '
                             'under configs/pretrain/')
    log = log or (lambda msg: None)
    set_clock(clock)
    quiet_logger()
    if threads:
        torch.set_num_threads(threads)
    variants = [False, compile] if compile else [False]
    specs = [(path, c) for path in configs for c in variants]
    entries, results = [], []
    workers = []
    try:
        if checkouts:
            for root, label in checkout_labels(checkouts):
                worker = CheckoutWorker(root, label, threads, clock, log)
                workers.append(worker)
                for path, compiled in specs:
                    entry, res = worker.build(
                        checkout_config(path, root), batch_size, input_size,
                        device, amp, cfg_options, compiled)
                    res.config, res.checkout = path, label
                    entries.append(entry)
                    results.append(res)
        else:
            for path, compiled in specs:
                entry, res = build_entry(path, batch_size, input_size, device,
                                         amp, cfg_options, compiled, log)
                entries.append(entry)
                results.append(res)
        times, enc_times = time_interleaved(entries, warmup, rounds,
                                            steps_per_round, amp, log)
        for i, res in enumerate(results):
            res.step_times = times[i]
            res.enc_step_times = enc_times[i]
            if res.compiled:
                res.recompiles = entry_recompiles(entries[i])
            elif profile:
                e = entries[i]
                res.profile_ms = e['profile']() if 'profile' in e else \
                    profile_step(e, amp)
    finally:
        for worker in workers:
            worker.close()
    del entries
    own = [r for r in results if r.checkout == results[0].checkout]
    if measure_memory:
        if checkouts:
            log('peak memory is measured for this checkout only')
        for res in own:
            if res.compiled:
                continue
            res.peak_mem_mib, res.state_mem_mib = measure_peak_memory(
                res.config, res.batch, res.input, device, amp,
                max(warmup, 1) + 1, cfg_options, threads)
            log(f'{res.name}: peak memory {res.peak_mem_mib:.0f} MiB '
                f'(model state {res.state_mem_mib:.0f} MiB)')
    if pipeline_dir is not None:
        for res in own:
            cfg = load_pretrain_config(res.config, None, cfg_options)
            res.pipeline_images_per_s = measure_pipeline(
                cfg, pipeline_dir, res.batch, pipeline_images)
            log(f'{res.name}: training pipeline '
                f'{res.pipeline_images_per_s:.1f} images/s per worker')
    return results
