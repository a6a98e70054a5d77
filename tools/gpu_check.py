# Copyright (c) um-mae contributors. All rights reserved.
"""One prepared check of a GPU machine: install, pre-training cost, dense
training; one Markdown report.

    python tools/gpu_check.py [--out-dir work_dirs/gpu_check]
        [--budget-s 480] [--peak-tflops T] [--device cuda|cpu]
        [--only NAME] [--amp bf16 fp16] [--no-compile]
        [--compile-backend B] [--iters 20]

On one CUDA GPU, within ``--budget-s`` seconds (parts that would not fit
are reported as skipped, with the reason):

1. ``tools/check_install.py`` (mmcv's ops on CPU and CUDA against
   torchvision's);
2. / 3. ``--iters`` training iterations of one full-size detection and one
   full-size segmentation config (their AMP optimizer wrapper, SyncBN as
   BN in one process, the config's per-GPU batch of synthetic data):
   seconds per iteration, images / s, peak memory, the losses;
4. the pre-training benchmark (:mod:`um_mae.toolkit.benchmark`) at the
   recipes' per-GPU batch (the UM-MAE config's ``train_dataloader.
   batch_size``, 128, for both methods): UM-MAE vs SimMIM on PVT-S and
   Swin-T, AMP in bfloat16 and float16, eager and ``torch.compile`` (as
   mmengine's ``compile=True``): images / s, peak memory
   (``torch.cuda.max_memory_allocated``) and the model FLOP utilisation,
   the training FLOPs per image (``torch.utils.flop_counter``) x images / s
   over the GPU's dense bfloat16 peak (:data:`PEAK_BF16_TFLOPS`, or
   ``--peak-tflops``).

The report goes to ``OUT_DIR/gpu_check.md`` (and the terminal). Without a
GPU (``--device cpu``, the default there) the same code runs at a tiny
size: the backbones' ``'demo'`` archs, small images and batches, CPU
autocast (:mod:`um_mae.toolkit.cpu_amp`) and the ``aot_eager`` compile
backend, so that the script is tested before a GPU is at hand. What to
carry to a machine without internet: ``docs/gpu_check.md``.
"""
import argparse
import gc
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

#: dense bfloat16 tensor-core peaks (TFLOPS, no sparsity) from NVIDIA's
#: data sheets; matched in order against ``torch.cuda.get_device_name()``
PEAK_BF16_TFLOPS = (
    ('H100 PCIe', 756.),
    ('H100 NVL', 835.),
    ('H100', 989.),  # SXM
    ('H200', 989.),
    ('GH200', 989.),
    ('A100', 312.),
    ('L40S', 362.),
    ('A10G', 70.),
    ('A10', 125.),
    ('L4', 121.),
    ('RTX 4090', 165.),
    ('RTX 3090', 71.),
)
PRETRAIN = {  # backbone -> (UM-MAE config, SimMIM config)
    'PVT-S': ('configs/pretrain/ummae/'
              'ummae_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px.py',
              'configs/pretrain/simmim/'
              'simmim_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px.py'),
    'Swin-T': ('configs/pretrain/ummae/'
               'ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_in1k-256px.py',
               'configs/pretrain/simmim/'
               'simmim_swin-tiny_8xb64-accum8-amp-coslr-200e_in1k-256px.py'),
}
DET = 'configs/det/gfl/gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'
SEG = ('configs/seg/upernet/'
       'pvt-small_ummae-ft_upernet_8xb2-amp-160k_ade20k-512x512.py')
# the tiny size on CPU: the 'demo' archs end with 128 channels (PVT, Swin)
TINY_PRETRAIN = dict(
    options={
        'model.backbone.arch': 'demo',
        'model.neck.in_channels': 128
    },
    batch=2,
    input=128)
TINY_DENSE = dict(det=96, seg=64, batch=2)


def parse_args(argv=None):
    import torch
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(
        description='Check a GPU machine: install, pre-training benchmark, '
        'dense training; writes one Markdown report')
    parser.add_argument('--device', default='cuda' if cuda else 'cpu')
    parser.add_argument('--out-dir', default='work_dirs/gpu_check')
    parser.add_argument(
        '--budget-s',
        type=float,
        default=480,
        help='stop starting new parts after this many seconds')
    parser.add_argument(
        '--peak-tflops',
        type=float,
        help='dense bf16 peak of the GPU (default: from its name)')
    parser.add_argument(
        '--only', help='benchmark only the backbones whose name contains this')
    parser.add_argument(
        '--amp', nargs='+', default=['bf16', 'fp16'], choices=['bf16', 'fp16'])
    parser.add_argument('--no-compile', action='store_true')
    parser.add_argument(
        '--compile-backend',
        help='default: inductor on CUDA, aot_eager on CPU')
    parser.add_argument(
        '--iters', type=int, default=20, help='dense training iterations')
    parser.add_argument('--det-config', default=DET)
    parser.add_argument('--seg-config', default=SEG)
    return parser.parse_args(argv)


def peak_tflops(name: str):
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value
    return None


class Report:
    """Markdown sections and a time budget."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.lines = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def add(self, *lines: str) -> None:
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)


def check_install(report: Report) -> None:
    report.add('', '## 1. tools/check_install.py', '')
    proc = subprocess.run([sys.executable, 'tools/check_install.py'],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=max(30, report.left()))
    out = (proc.stdout + proc.stderr).strip() or '(no output)'
    report.add(f'exit status {proc.returncode}', '', '```', out, '```')


def _sync(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _reset_peak(device):
    import torch
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device):
    import torch
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return float('nan')


def benchmark(report: Report, args, tflops) -> None:
    import torch

    from um_mae.toolkit.benchmark import build_entry, time_interleaved
    from um_mae.toolkit.pretrain_inputs import load_pretrain_config
    device = torch.device(args.device)
    tiny = device.type == 'cpu'
    backend = args.compile_backend or ('aot_eager' if tiny else 'inductor')
    report.add(
        '', '## 4. Pre-training benchmark (UM-MAE vs SimMIM)', '',
        'One training step = preprocessing, forward, backward, optimizer '
        'step; median of the timed steps. MFU = training FLOPs per image x '
        f'images/s / the dense bf16 peak ({tflops or "unknown"} TFLOPS).' +
        (' Tiny CPU mode: demo archs, batch 2, 128 px.' if tiny else ''), '',
        '| backbone | method | batch | amp | compile | images/s | '
        'peak MiB | GFLOPs/img | MFU |', '|---' * 9 + '|')
    variants = [False] if args.no_compile else [False, backend]
    for backbone, paths in PRETRAIN.items():
        if args.only and args.only.lower() not in backbone.lower():
            continue
        # the paper's per-GPU batch: the UM-MAE config's, for both methods
        batch = TINY_PRETRAIN['batch'] if tiny else \
            load_pretrain_config(osp.join(REPO, paths[0])
                                 ).train_dataloader.batch_size
        options = TINY_PRETRAIN['options'] if tiny else None
        size = TINY_PRETRAIN['input'] if tiny else None
        for compiled in variants:
            for amp in args.amp:
                for path in paths:
                    method = osp.basename(path).split('_')[0]
                    row = f'| {backbone} | {method} | {batch} | {amp} | ' \
                        f'{f"compile ({compiled})" if compiled else "eager"} |'
                    if report.left() < 30:
                        report.add(row + ' skipped: time budget | | | |')
                        continue
                    try:
                        _reset_peak(device)
                        entry, res = build_entry(
                            osp.join(REPO, path), batch, size, args.device,
                            amp, options, compiled)
                        times, _ = time_interleaved([entry],
                                                    warmup=1,
                                                    rounds=3 if tiny else 10,
                                                    amp=amp)
                        res.step_times = times[0]
                        peak = _peak_mib(device)
                        del entry
                        # GFLOPs/image x images/s over TFLOPS x 1e3, in %
                        used = res.gflops * res.images_per_s
                        mfu = f'{used / tflops / 10:.1f}%' if tflops \
                            else 'n/a'
                        report.add(f'{row} {res.images_per_s:.1f} | '
                                   f'{peak:.0f} | {res.gflops:.1f} | {mfu} |')
                    except Exception as e:  # noqa: BLE001 - reported
                        report.add(f'{row} failed: {type(e).__name__}: '
                                   f'{str(e)[:300]} | | | |')


def _dense_error(task: str, device) -> str:
    """Why a detector / segmentor cannot run here, or ''."""
    import torch
    try:
        import mmcv.ops  # noqa: F401
        __import__('mmdet' if task == 'det' else 'mmseg')
    except ImportError as e:
        return (f'mmcv.ops / mmdet / mmseg missing ({e}); install the dense '
                'stack (`bash tools/install.sh --with-ops`)')
    if device.type == 'cuda' and task == 'det':
        try:
            from mmcv.ops import nms
            boxes = torch.tensor([[0., 0., 10., 10.]], device=device)
            nms(boxes, torch.ones(1, device=device), 0.5)
        except Exception as e:  # noqa: BLE001 - reported
            return (f"mmcv's CUDA ops do not run ({type(e).__name__}: "
                    f'{str(e)[:200]}); build mmcv with CUDA ops '
                    '(`FORCE_CUDA=1 bash tools/install.sh`)')
    return ''


def dense_run(report: Report, args, task: str, path: str) -> None:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from um_mae.toolkit.cpu_amp import cpu_amp_optim_cfg
    from um_mae.toolkit.tiny_config import (build_model, load_config,
                                            shrink_config, synthetic_batch,
                                            train_size)
    device = torch.device(args.device)
    tiny = device.type == 'cpu'
    name = osp.splitext(osp.basename(path))[0]
    report.add(
        '', f'## {2 if task == "det" else 3}. {args.iters} training '
        f'iterations of {name}', '')
    error = _dense_error(task, device)
    if error:
        report.add(f'skipped: {error}')
        return
    if report.left() < 60:
        report.add('skipped: time budget')
        return
    try:
        cfg = load_config(osp.join(REPO, path))
        if tiny:
            shrink_config(cfg, TINY_DENSE[task])
        size = TINY_DENSE[task] if tiny else train_size(cfg)
        batch = TINY_DENSE['batch'] if tiny else \
            cfg.train_dataloader.batch_size
        _reset_peak(device)
        torch.manual_seed(0)
        model = build_model(cfg).to(device)
        model.train()
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            if tiny:  # the config's AMP options on CPU
                wrapper = build_optim_wrapper(
                    model, cpu_amp_optim_cfg(cfg.optim_wrapper, 'bfloat16'))
            else:
                wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        data = synthetic_batch(cfg, size, batch)
        times, losses = [], []
        for _ in range(args.iters):
            _sync(device)
            start = time.perf_counter()
            log_vars = model.train_step(data, wrapper)
            _sync(device)
            times.append(time.perf_counter() - start)
            losses.append(float(log_vars['loss']))
        sec = statistics.median(times[1:] or times)
        finite = all(map(lambda v: v == v and abs(v) != float('inf'), losses))
        report.add(f'{type(wrapper).__name__}, batch {batch} x {size} px: '
                   f'{sec:.3f} s/iter (median after the first, which took '
                   f'{times[0]:.1f} s), {batch / sec:.1f} images/s, peak '
                   f'{_peak_mib(device):.0f} MiB; losses '
                   f'{losses[0]:.3f} -> {losses[-1]:.3f} '
                   f'({"all finite" if finite else "NOT FINITE"})')
        del model, wrapper, data
    except Exception as e:  # noqa: BLE001 - reported
        report.add(f'failed: {type(e).__name__}: {str(e)[:500]}', '', '```',
                   traceback.format_exc()[-2000:], '```')


def main(argv=None):
    args = parse_args(argv)
    import torch
    device = torch.device(args.device)
    report = Report(args.budget_s)
    if device.type == 'cuda':
        gpu = torch.cuda.get_device_name(device)
        tflops = args.peak_tflops or peak_tflops(gpu)
    else:
        gpu, tflops = 'none (CPU, tiny mode)', args.peak_tflops
    report.add(
        '# um-mae GPU check', '',
        f'GPU: {gpu}; torch {torch.__version__} (CUDA '
        f'{torch.version.cuda}); bf16 peak: '
        f'{f"{tflops:g} TFLOPS" if tflops else "unknown (--peak-tflops)"}')
    for name in ('mmengine', 'mmcv', 'mmpretrain', 'mmdet', 'mmseg'):
        try:
            version = __import__(name).__version__
        except ImportError:
            version = 'missing'
        report.add(f'- {name} {version}')
    check_install(report)
    dense_run(report, args, 'det', args.det_config)
    dense_run(report, args, 'seg', args.seg_config)
    benchmark(report, args, tflops)
    report.add('', f'total {report.elapsed():.0f} s')
    os.makedirs(args.out_dir, exist_ok=True)
    out = osp.join(args.out_dir, 'gpu_check.md')
    with open(out, 'w') as f:
        f.write('\n'.join(report.lines) + '\n')
    print(f'written to {out}')


if __name__ == '__main__':
    main()
