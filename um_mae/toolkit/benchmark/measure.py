# Copyright (c) um-mae contributors. All rights reserved.
"""Measurements of the pre-training benchmark: time, memory, FLOPs, compile,
profile and data pipeline.

Compares masked-image-modeling recipes (UM-MAE, SimMIM, MAE) as the UM-MAE
paper does (Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022, Table 1): the same
backbone, batch and input size, one training step = data preprocessing,
forward, backward and optimizer step.

How each number is measured:

* **seconds per step**: every model is built in one process and warmed up;
  then the configs take turns (round-robin) for several rounds, so that a
  slow phase of a shared machine hits all of them alike. The median over
  all timed steps of a config is reported. CUDA is synchronised around
  every step.
* **encoder seconds per step**: in the same rounds, the backbone alone runs
  forward and backward on the inputs it received in a real step (captured
  by a hook), with the sum of its outputs as the loss: the encoder's part of
  a step, without decoder, loss and optimizer. The ratio of two configs'
  encoder times shows what the compact encoder saves, apart from the cost
  of each recipe's decoder.
* **peak memory**: measured for each config in a fresh child process, so
  that models, allocator caches and library imports of the other configs
  do not count. On CUDA it is ``torch.cuda.max_memory_allocated`` over
  model building and the steps (parameters, gradients, optimizer states,
  activations). On CPU it is the growth of the resident set over those
  same phases: the child reads its RSS after all imports, resets the
  kernel's high-water mark (``/proc/self/clear_refs``; without it, the
  lifetime peak ``ru_maxrss`` is used) and reports ``VmHWM - RSS``. It thus
  also counts what the CPU allocator keeps cached, like a GPU's
  ``max_memory_reserved`` would. The **model state** (parameters, their
  gradients and the optimizer's state tensors) is counted exactly after the
  steps; ``peak - state`` (``act_mem_mib``) is the part that grows with the
  batch (activations, temporaries): at small batches the state dominates
  the peak and hides the saving of a cheaper encoder.
* **GFLOPs per image**: multiply-accumulates x 2 of one training step
  (forward and backward) counted by ``torch.utils.flop_counter``, the
  encoder's share separately; the CPU flash-attention kernels are counted
  with torch's SDPA formulas.
* **encoder tokens per image**: a hook on the first attention block of the
  backbone reads the size of its input (``(N, L, C)`` or ``(N, H, W, C)``),
  i.e. the tokens the encoder's first stage really processes: the compact
  UM-MAE map has a quarter of the tokens of SimMIM's full map; MAE counts
  its visible tokens plus the class token.

Inputs are synthetic: random uint8 images of the requested size go through
the mask transforms of the config's own training pipeline (e.g.
``UniformMaskGenerator``) and ``PackInputs``; everything else in the
pipeline (loading, cropping, flipping) is skipped
(:mod:`um_mae.toolkit.pretrain_inputs`).
"""
import concurrent.futures as cf
import copy
import math
import multiprocessing as mp
import os
import os.path as osp
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import default_collate
from torch import Tensor

from ..pretrain_inputs import (build_pretrain_model, build_synthetic_batch,
                               load_pretrain_config, quiet_logger,
                               train_pipeline)

__all__ = [
    'build_model_and_optimizer', 'set_clock', 'train_step', 'EncoderInputs',
    'encoder_step', 'EncoderTokenCounter', 'flop_counter', 'model_state_bytes',
    'check_compile_support', 'CompileStats', 'compile_train_step',
    'dynamo_counts', 'PROFILE_KINDS', 'profile_ops', 'measure_pipeline',
    'measure_peak_memory'
]

_AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def _amp_dtype(amp: Optional[str]) -> Optional[torch.dtype]:
    if amp is None:
        return None
    if amp not in _AMP_DTYPES:
        raise ValueError(f'amp {amp!r} is not supported; use one of '
                         f'{sorted(_AMP_DTYPES)} or leave it out for fp32')
    return _AMP_DTYPES[amp]


def _autocast(device: torch.device, amp: Optional[str]):
    """``torch.autocast`` for ``amp`` on ``device``; no-op for fp32."""
    dtype = _amp_dtype(amp)
    return nullcontext() if dtype is None else torch.autocast(
        device.type, dtype=dtype)


def build_model_and_optimizer(cfg: Config,
                              device: Union[str, torch.device] = 'cpu',
                              amp: Optional[str] = None):
    """Build the config's model and optimizer wrapper for single steps.

    Gradient accumulation is turned off (every step updates the weights);
    the optimizer, its parameter-wise settings and gradient clipping are
    the config's. With ``amp`` on CUDA an ``AmpOptimWrapper`` (dynamic loss
    scale) is used; on CPU, where mmengine's wrapper needs a GPU, the plain
    wrapper runs under ``torch.autocast`` (see :func:`train_step`).

    Args:
        cfg (Config): Config from :func:`load_pretrain_config`.
        device (str | torch.device): Where to run. Defaults to ``'cpu'``.
        amp (str, optional): ``'bf16'``, ``'fp16'`` or None (fp32).
            Defaults to None.

    Returns:
        tuple: ``(model, optim_wrapper)``.
    """
    from mmengine.optim import build_optim_wrapper
    dtype = _amp_dtype(amp)
    model = build_pretrain_model(cfg)
    model.init_weights()
    model.to(device)
    model.train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.pop('accumulative_counts', None)
    optim_cfg.pop('dtype', None)
    optim_cfg.pop('loss_scale', None)
    if dtype is not None and torch.device(device).type == 'cuda':
        optim_cfg.update(
            type='AmpOptimWrapper', loss_scale='dynamic', dtype=dtype)
    else:
        optim_cfg['type'] = 'OptimWrapper'
    return model, build_optim_wrapper(model, optim_cfg)


#: what a step's seconds are: ``'wall'`` (default) or ``'cpu'``
_CLOCKS = dict(wall=time.perf_counter, cpu=time.process_time)
_clock = time.perf_counter


def set_clock(name: str) -> None:
    """Time steps by the wall clock or by this process's CPU time.

    ``'cpu'`` (``time.process_time``, all threads of the process) does not
    count the time other jobs on a shared machine take the cores away; with
    one thread it is the work the step needs. On CUDA it misses the GPU's
    time: use ``'wall'`` there.

    Args:
        name (str): ``'wall'`` or ``'cpu'``.
    """
    global _clock
    if name not in _CLOCKS:
        raise ValueError(f'clock {name!r} is not known; use one of '
                         f'{sorted(_CLOCKS)}')
    _clock = _CLOCKS[name]


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def train_step(model: nn.Module,
               optim_wrapper,
               data: dict,
               amp: Optional[str] = None) -> float:
    """One training step (preprocess, forward, backward, update), timed.

    Args:
        model (nn.Module): From :func:`build_model_and_optimizer`.
        optim_wrapper: Its optimizer wrapper.
        data (dict): A batch from :func:`build_synthetic_batch`.
        amp (str, optional): ``'bf16'``, ``'fp16'`` or None.
            Defaults to None.

    Returns:
        float: Wall-clock seconds of the step.
    """
    device = next(model.parameters()).device
    # the CUDA AmpOptimWrapper autocasts by itself
    ctx = _autocast(device, amp) if device.type == 'cpu' else nullcontext()
    _sync(device)
    start = _clock()
    with ctx:
        model.train_step(data, optim_wrapper)
    _sync(device)
    return _clock() - start


class EncoderInputs:
    """Capture the inputs of the backbone's first call (a forward hook).

    Args:
        backbone (nn.Module): The encoder.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.args: Optional[tuple] = None
        self.kwargs: Optional[dict] = None
        self._handle = backbone.register_forward_pre_hook(
            self._hook, with_kwargs=True)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.args is None:
            detach = (lambda v: v.detach() if torch.is_tensor(v) else v)
            self.args = tuple(detach(a) for a in args)
            self.kwargs = {k: detach(v) for k, v in kwargs.items()}

    def remove(self) -> None:
        """Remove the hook."""
        self._handle.remove()


def _float_tensors(out) -> List[Tensor]:
    if torch.is_tensor(out):
        return [out] if out.is_floating_point() and out.requires_grad else []
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _float_tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _float_tensors(o)]
    return []


def encoder_step(model: nn.Module,
                 inputs: EncoderInputs,
                 amp: Optional[str] = None) -> float:
    """Forward and backward of the backbone alone, timed.

    The backbone runs on the inputs captured by ``inputs``; the sum of its
    floating-point outputs is back-propagated; the gradients are dropped
    afterwards (set to None) so that training steps are not affected.

    Args:
        model (nn.Module): From :func:`build_model_and_optimizer`.
        inputs (EncoderInputs): Inputs of a real step of ``model``.
        amp (str, optional): See :func:`train_step`. Defaults to None.

    Returns:
        float: Wall-clock seconds.
    """
    if inputs.args is None:
        raise ValueError('no backbone inputs were captured; run a training '
                         'step with EncoderInputs attached first')
    device = next(model.parameters()).device
    _sync(device)
    start = _clock()
    with _autocast(device, amp):
        out = model.backbone(*inputs.args, **inputs.kwargs)
        loss = sum(t.float().sum() for t in _float_tensors(out))
    loss.backward()
    _sync(device)
    elapsed = _clock() - start
    model.backbone.zero_grad(set_to_none=True)
    return elapsed


class EncoderTokenCounter:
    """Count the tokens entering the backbone's first attention block.

    The first module (in registration order) that owns an ``attn``
    sub-module is hooked: a PVT/Swin block or a ViT layer. Its input is
    channels-last, ``(N, L, C)`` or ``(N, H, W, C)``; the tokens per image
    are the product of the middle dimensions.

    Args:
        backbone (nn.Module): The encoder.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.tokens: Optional[int] = None
        self.block_name = None
        for name, module in backbone.named_modules():
            if isinstance(getattr(module, 'attn', None), nn.Module):
                self.block_name = name
                self._handle = module.register_forward_pre_hook(self._hook)
                break
        if self.block_name is None:
            raise ValueError(
                f'{type(backbone).__name__} has no block with an `attn` '
                'sub-module; encoder tokens cannot be counted')

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if self.tokens is None and args and torch.is_tensor(args[0]):
            self.tokens = math.prod(args[0].shape[1:-1])

    def remove(self) -> None:
        """Remove the hook."""
        self._handle.remove()


def flop_counter():
    """``FlopCounterMode`` that also counts CPU flash attention."""
    from torch.utils.flop_counter import (FlopCounterMode,
                                          sdpa_backward_flop_count,
                                          sdpa_flop_count)
    aten = torch.ops.aten
    mapping = {}
    fwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    bwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward',
                  None)
    if fwd is not None:
        mapping[fwd] = lambda q, k, v, *args, out_shape=None, **kw: \
            sdpa_flop_count(q, k, v)
    if bwd is not None:
        mapping[bwd] = lambda g, q, k, v, *args, out_shape=None, **kw: \
            sdpa_backward_flop_count(g, q, k, v)
    return FlopCounterMode(display=False, custom_mapping=mapping)


def model_state_bytes(model: nn.Module, optim_wrapper) -> int:
    """Bytes of parameters, their gradients and the optimizer state."""
    total = 0
    for p in model.parameters():
        total += p.numel() * p.element_size() * (2 if p.requires_grad else 1)
    for state in optim_wrapper.optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
    return total


# ----------------------------------------------------------------------
# torch.compile


def check_compile_support(device: str = 'cpu',
                          backend: str = 'inductor') -> None:
    """Raise a ``ValueError`` unless ``torch.compile`` can run.

    Args:
        device (str): Where the compiled step would run.
            Defaults to ``'cpu'``.
        backend (str): ``torch.compile`` backend. Defaults to
            ``'inductor'``.
    """
    if not hasattr(torch, 'compile'):
        raise ValueError(f'--compile needs torch.compile (torch >= 2.0), '
                         f'this is torch {torch.__version__}; run without '
                         '--compile')
    from torch import _dynamo
    if not _dynamo.is_dynamo_supported():
        raise ValueError(
            f'torch.compile is not supported by torch {torch.__version__} '
            f'on Python {sys.version.split()[0]}; run without --compile')
    if backend not in _dynamo.list_backends(exclude_tags=()):
        raise ValueError(f'torch.compile backend {backend!r} is not known; '
                         'use one of '
                         f'{_dynamo.list_backends(exclude_tags=())}')
    if backend != 'inductor':
        return
    if torch.device(device).type == 'cuda':
        from torch.utils._triton import has_triton
        if not has_triton():
            raise ValueError('torch.compile (inductor) on CUDA needs triton, '
                             'which is not installed; install it or run '
                             'without --compile')
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - any failure means no compiler
        raise ValueError(
            'torch.compile (inductor) on CPU needs a C++ compiler: '
            f'{str(e).splitlines()[0] if str(e) else type(e).__name__}; '
            'install g++ or run without --compile') from None


def dynamo_counts() -> Tuple[int, int]:
    """(graphs compiled, graph breaks) so far in this process."""
    from torch._dynamo.utils import counters
    breaks = sum(counters['graph_break'].values()) + sum(
        counters['unimplemented'].values())
    return counters['stats']['unique_graphs'], breaks


@dataclass
class CompileStats:
    """What dynamo did for one compiled ``train_step``.

    Args:
        graphs (int): Graphs compiled in the first step.
        breaks (int): Graph breaks hit in the first step.
        recompiles (int): Graphs compiled in later steps.
    """
    graphs: int = 0
    breaks: int = 0
    recompiles: int = 0


def compile_train_step(model: nn.Module,
                       backend: str = 'inductor') -> CompileStats:
    """Wrap ``model.train_step`` in ``torch.compile`` as mmengine does.

    mmengine's ``Runner(compile=True)`` replaces the model's ``train_step``
    by ``torch.compile(model.train_step)`` (default options); this does
    the same. The returned stats are filled by :func:`entry_step`.

    Args:
        model (nn.Module): The algorithm.
        backend (str): ``torch.compile`` backend; ``compile=True`` uses
            ``'inductor'``. Defaults to ``'inductor'``.
    """
    # the models of several configs share their algorithm's train_step code,
    # whose compiled versions dynamo caches per code object (8 by default)
    from torch._dynamo import config as dynamo_config
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    model.train_step = torch.compile(model.train_step, backend=backend)
    return CompileStats()


# ----------------------------------------------------------------------
# profile

#: kinds of operators of :func:`profile_ops`, in table order
PROFILE_KINDS = ('matmul', 'attention', 'gelu', 'copies', 'norms', 'conv',
                 'optimizer', 'other')
_MATMUL_OPS = ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm')
_COPY_OPS = ('aten::copy_', 'aten::clone', 'aten::contiguous',
             'aten::_to_copy')


def _op_kind(event) -> str:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith('Optimizer.'):
            return 'optimizer'
        parent = parent.cpu_parent
    name = event.name
    if name.startswith('Optimizer.') or 'fused_adam' in name:
        return 'optimizer'
    if name in _MATMUL_OPS:
        return 'matmul'
    if 'scaled_dot_product' in name or 'softmax' in name:
        return 'attention'
    if 'gelu' in name:
        return 'gelu'
    if name in _COPY_OPS:
        return 'copies'
    if 'layer_norm' in name:
        return 'norms'
    if 'convolution' in name:
        return 'conv'
    return 'other'


def profile_ops(step: Callable[[], object]) -> Dict[str, float]:
    """Where one call of ``step`` spends its time, by kind of operator.

    ``step`` runs under ``torch.profiler`` (CPU activity); the self time of
    every operator is added to its kind (:data:`PROFILE_KINDS`: matrix
    products; attention kernels and softmax; GELU and its backward; copies,
    e.g. layout changes; layer norms; convolutions; everything under
    ``Optimizer.step``/``zero_grad``; the rest). The self times of the
    operators of the main thread add up to about the step's wall time.

    Args:
        step (callable): One training step, e.g. of an entry of the
            benchmark's driver (``profile_step``).

    Returns:
        dict[str, float]: Milliseconds per kind, and ``matmul_gflop``: the
        GFLOPs of the matrix products (from their input shapes).
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        step()
    out = dict.fromkeys(PROFILE_KINDS, 0.)
    out['matmul_gflop'] = 0.
    for event in p.events():
        kind = _op_kind(event)
        out[kind] += event.self_cpu_time_total / 1e3
        if kind == 'matmul':
            out['matmul_gflop'] += _matmul_flops(event) / 1e9
    return out


def _matmul_flops(event) -> int:
    """2 x multiply-adds of an ``mm``/``addmm``/``bmm``/``baddbmm`` event."""
    shapes = [s for s in event.input_shapes if len(s) >= 2]
    if len(shapes) < 2:
        return 0
    a, b = shapes[-2], shapes[-1]  # (addmm's bias comes first)
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


# ----------------------------------------------------------------------
# input pipeline

_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def measure_pipeline(cfg: Config,
                     image_dir: str,
                     batch_size: int = 8,
                     num_images: int = 128,
                     rounds: int = 3,
                     seed: int = 0) -> float:
    """Images per second of the config's training pipeline, one process.

    Runs every transform of the training pipeline (loading and decoding,
    crop, flip, mask generation, ``PackInputs``) on the image files of
    ``image_dir`` in turn, and collates every ``batch_size`` results as
    the config's loader does (``default_collate``); that is the work of one
    dataloader worker. As in such a worker, torch and OpenCV use one
    thread. Not counted: reading from a cold disk cache, moving batches
    from the workers to the main process.

    Args:
        cfg (Config): Config from :func:`load_pretrain_config`.
        image_dir (str): Folder of images (e.g. ``data/demo_images``).
        batch_size (int): Images per collated batch. Defaults to 8.
        num_images (int): Images per round. Defaults to 128.
        rounds (int): Timed rounds; the median is returned. Defaults to 3.
        seed (int): Seed of numpy's generator (restored). Defaults to 0.

    Returns:
        float: Images per second.
    """
    from mmcv.transforms import Compose
    from mmpretrain.registry import TRANSFORMS
    files = sorted(
        osp.join(image_dir, f)
        for f in (os.listdir(image_dir) if osp.isdir(image_dir) else [])
        if f.lower().endswith(_IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f'no images in {image_dir!r}; run `python '
                         'tools/make_demo_data.py pretrain` (writes '
                         'data/demo_images) or pass --data-dir')
    pipeline = Compose(
        [TRANSFORMS.build(copy.deepcopy(t)) for t in train_pipeline(cfg)])
    collate = default_collate
    import cv2
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    np_state = np.random.get_state()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    np.random.seed(seed)

    def run(n: int) -> None:
        batch = []
        for i in range(n):
            out = pipeline(dict(img_path=files[i % len(files)], sample_idx=i))
            if out is None:
                raise ValueError(
                    f'the pipeline dropped {files[i % len(files)]}')
            batch.append(out)
            if len(batch) == batch_size:
                collate(batch)
                batch = []
        if batch:
            collate(batch)

    try:
        run(min(len(files), batch_size))  # warm up (imports, caches)
        speeds = []
        for _ in range(rounds):
            start = time.perf_counter()
            run(num_images)
            speeds.append(num_images / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
        np.random.set_state(np_state)
    return statistics.median(speeds)


# ----------------------------------------------------------------------
# memory


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _hwm_bytes() -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _memory_worker(config: str, batch_size: int, input_size: int, device: str,
                   amp: Optional[str], steps: int, cfg_options: Optional[dict],
                   threads: Optional[int]) -> Tuple[float, float]:
    """Peak memory and model state (MiB) of one config (child)."""
    quiet_logger()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_pretrain_config(config, input_size, cfg_options)
    data = build_synthetic_batch(cfg, batch_size, input_size)
    dev = torch.device(device)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
    else:
        start = _rss_bytes()
        hwm_reset = _reset_hwm()
        ru_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model, optim_wrapper = build_model_and_optimizer(cfg, dev, amp)
    for _ in range(steps):
        train_step(model, optim_wrapper, data, amp)
    if dev.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(dev) - start
    else:
        hwm = _hwm_bytes() if hwm_reset else None
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            start = max(start, ru_start)
        peak = hwm - start
    return peak / 2**20, model_state_bytes(model, optim_wrapper) / 2**20


def measure_peak_memory(config: str,
                        batch_size: int,
                        input_size: int,
                        device: str = 'cpu',
                        amp: Optional[str] = None,
                        steps: int = 2,
                        cfg_options: Optional[dict] = None,
                        threads: Optional[int] = None) -> Tuple[float, float]:
    """Peak memory of one config in a fresh ``spawn`` child process.

    Args:
        config (str): Config path.
        batch_size (int): Images per step.
        input_size (int): Image side.
        device (str): ``'cpu'`` or a CUDA device. Defaults to ``'cpu'``.
        amp (str, optional): See :func:`train_step`. Defaults to None.
        steps (int): Training steps run (the first allocates the optimizer
            state). Defaults to 2.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        threads (int, optional): CPU threads of the child; None keeps
            torch's default. Defaults to None.

    Returns:
        tuple[float, float]: Peak memory and model state in MiB; see the
        module doc for what is counted.
    """
    with cf.ProcessPoolExecutor(
            max_workers=1, mp_context=mp.get_context('spawn')) as pool:
        return pool.submit(_memory_worker, config, batch_size, input_size,
                           device, amp, steps, cfg_options, threads).result()
