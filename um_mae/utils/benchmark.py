# Copyright (c) um-mae contributors. All rights reserved.
"""Pre-training efficiency benchmark: step time, memory, encoder tokens.

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
pipeline (loading, cropping, flipping) is skipped.
"""
import concurrent.futures as cf
import copy
import csv
import json
import math
import multiprocessing as mp
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings
from torch import Tensor

__all__ = [
    'BenchmarkResult', 'load_benchmark_config', 'pack_images',
    'build_synthetic_batch', 'config_input_size', 'build_model_and_optimizer',
    'EncoderTokenCounter', 'EncoderInputs', 'train_step', 'encoder_step',
    'time_interleaved',
    'measure_peak_memory', 'run_benchmark', 'resolve_baselines',
    'format_markdown', 'write_csv', 'plot_results', 'quiet_logger',
    'flop_counter', 'model_state_bytes', 'TABLE_COLUMNS', 'build_entry',
    'entry_step', 'entry_encoder_step', 'check_compile_support',
    'compile_train_step', 'CompileStats', 'entry_recompiles', 'REPO_ROOT',
    'checkout_labels', 'checkout_config', 'CheckoutWorker', 'serve_worker',
    'paired_ratios', 'measure_pipeline', 'format_ab', 'format_compile',
    'format_pipeline', 'set_clock', 'profile_step', 'format_profile',
    'PROFILE_KINDS'
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

_AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


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


# ----------------------------------------------------------------------
# building


def quiet_logger() -> None:
    """Make a WARNING-level mmengine logger current (no init-weight logs)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('um_mae_benchmark', log_level='WARNING')


def _set_input_size(model_cfg, size: int) -> None:
    """Point every ``img_size`` (and MAE's ``num_patches``) at ``size``."""
    if isinstance(model_cfg, dict):
        patch = model_cfg.get('patch_size', 16)
        for key, value in model_cfg.items():
            if key == 'img_size':
                model_cfg[key] = size
            elif key == 'num_patches':
                model_cfg[key] = (size // patch)**2
            else:
                _set_input_size(value, size)
    elif isinstance(model_cfg, (list, tuple)):
        for item in model_cfg:
            _set_input_size(item, size)


def load_benchmark_config(path: str,
                          input_size: Optional[int] = None,
                          cfg_options: Optional[dict] = None) -> Config:
    """Load a pre-training config and register its modules.

    Args:
        path (str): Config file.
        input_size (int, optional): Input side; every ``img_size`` of the
            model config (and ``num_patches`` of an MAE decoder) is set to
            it. None keeps the config's. Defaults to None.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.

    Returns:
        Config: The config, with ``default_scope`` initialised.
    """
    if not os.path.isfile(path):
        raise ValueError(f'config {path!r} does not exist; pass a file '
                         'under configs/pretrain/')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    import_modules_from_strings(['um_mae'])
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if input_size is not None:
        _set_input_size(cfg.model, input_size)
    # as mmengine's Runner: a top-level data_preprocessor joins the model
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg


def _pipeline(cfg: Config) -> List[dict]:
    """The training pipeline, looked up through dataset wrappers."""
    ds = cfg.train_dataloader.dataset
    while 'pipeline' not in ds and isinstance(ds.get('dataset'), dict):
        ds = ds.dataset
    return list(ds.get('pipeline', []))


def config_input_size(cfg: Config) -> int:
    """Side of the training crop in the config's pipeline (default 224)."""
    for t in _pipeline(cfg):
        scale = t.get('scale', t.get('crop_size'))
        if 'Crop' in str(t.get('type')) and scale is not None:
            return scale if isinstance(scale, int) else scale[0]
    return 224


def pack_images(cfg: Config,
                images: Sequence[np.ndarray],
                seed: int = 0) -> dict:
    """Run the config's mask transforms and ``PackInputs`` on images.

    The transforms of the training pipeline whose type contains ``Mask``
    (e.g. ``UniformMaskGenerator``) and its ``PackInputs`` run on each
    image; loading and augmentation are skipped.

    Args:
        cfg (Config): Config from :func:`load_benchmark_config`.
        images (Sequence[np.ndarray]): uint8 ``(H, W, 3)`` images in the
            channel order of ``LoadImageFromFile`` (BGR).
        seed (int): Seed of numpy's generator, which the mask generators
            draw from; restored afterwards. Defaults to 0.

    Returns:
        dict: ``dict(inputs=uint8 (N, 3, H, W), data_samples=[...])``, what
        a dataloader gives ``model.train_step``.
    """
    from mmpretrain.registry import TRANSFORMS
    keep = [
        t for t in _pipeline(cfg)
        if 'Mask' in str(t['type']) or str(t['type']).endswith('PackInputs')
    ]
    if not keep or not str(keep[-1]['type']).endswith('PackInputs'):
        keep.append(dict(type='PackInputs'))
    transforms = [TRANSFORMS.build(copy.deepcopy(t)) for t in keep]
    np_state = np.random.get_state()
    np.random.seed(seed)
    try:
        samples = []
        for img in images:
            results = dict(
                img=img,
                img_shape=img.shape[:2],
                ori_shape=img.shape[:2],
                sample_idx=len(samples))
            for t in transforms:
                results = t(results)
            samples.append(results)
    finally:
        np.random.set_state(np_state)
    return default_collate(samples)


def build_synthetic_batch(cfg: Config,
                          batch_size: int,
                          input_size: int,
                          seed: int = 0) -> dict:
    """A collated batch of random images with the config's masks.

    Args:
        cfg (Config): Config from :func:`load_benchmark_config`.
        batch_size (int): Images in the batch.
        input_size (int): Image side in pixels.
        seed (int): Seed of the images and masks. Defaults to 0.

    Returns:
        dict: See :func:`pack_images`.
    """
    rng = np.random.RandomState(seed)
    images = [
        rng.randint(0, 256, (input_size, input_size, 3), np.uint8)
        for _ in range(batch_size)
    ]
    return pack_images(cfg, images, seed)


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
        cfg (Config): Config from :func:`load_benchmark_config`.
        device (str | torch.device): Where to run. Defaults to ``'cpu'``.
        amp (str, optional): ``'bf16'``, ``'fp16'`` or None (fp32).
            Defaults to None.

    Returns:
        tuple: ``(model, optim_wrapper)``.
    """
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import MODELS
    dtype = _amp_dtype(amp)
    model = MODELS.build(copy.deepcopy(cfg.model))
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


def time_interleaved(entries: Sequence[dict],
                     warmup: int = 2,
                     rounds: int = 5,
                     steps_per_round: int = 1,
                     amp: Optional[str] = None,
                     log=None) -> Tuple[Dict[int, List[float]], Dict[
                         int, List[float]]]:
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


def _dynamo_counts() -> Tuple[int, int]:
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


def _compiled_step(entry: dict, step) -> float:
    stats = entry['compile_stats']
    graphs, breaks = _dynamo_counts()
    seconds = step()
    now = _dynamo_counts()
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
# profile

#: kinds of operators of :func:`profile_step`, in table order
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


def profile_step(entry: dict, amp: Optional[str] = None) -> Dict[str, float]:
    """Where one training step spends its time, by kind of operator.

    One step of the entry runs under ``torch.profiler`` (CPU activity); the
    self time of every operator is added to its kind (:data:`PROFILE_KINDS`:
    matrix products; attention kernels and softmax; GELU and its backward;
    copies, e.g. layout changes; layer norms; convolutions; everything under
    ``Optimizer.step``/``zero_grad``; the rest). The self times of the
    operators of the main thread add up to about the step's wall time.

    Args:
        entry (dict): See :func:`entry_step`; not a compiled one.
        amp (str, optional): See :func:`train_step`. Defaults to None.

    Returns:
        dict[str, float]: Milliseconds per kind, and ``matmul_gflop``: the
        GFLOPs of the matrix products (from their input shapes).
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        entry_step(entry, amp)
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
# other checkouts (A/B)

#: root of the checkout this module belongs to
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# A worker loads this file by path (not through the ``um_mae`` package, so
# that ``um_mae`` is the worker's checkout while the harness is this one);
# keep this module free of imports from ``um_mae``.
_WORKER_BOOT = ('import importlib.util, sys\n'
                'spec = importlib.util.spec_from_file_location('
                '"um_mae_benchmark_worker", sys.argv[1])\n'
                'mod = importlib.util.module_from_spec(spec)\n'
                'sys.modules[spec.name] = mod\n'
                'spec.loader.exec_module(mod)\n'
                'mod.serve_worker(sys.argv[2])\n')


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
        commit = subprocess.run(['git', '-C', root, 'rev-parse', '--short',
                                 'HEAD'],
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
    ``root`` and runs this file's harness (:func:`build_entry`,
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
            [sys.executable, '-c', _WORKER_BOOT,
             osp.abspath(__file__), root],
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


def paired_ratios(this: BenchmarkResult,
                  other: BenchmarkResult) -> List[float]:
    """``other / this`` step time, step by step.

    Every entry runs the same number of steps per round, so the k-th steps
    of two entries ran in the same round, seconds apart: their ratio is
    not moved by slow phases of a shared machine that last longer.
    """
    return [b / a for a, b in zip(this.step_times, other.step_times)]


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
        cfg (Config): Config from :func:`load_benchmark_config`.
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
        [TRANSFORMS.build(copy.deepcopy(t)) for t in _pipeline(cfg)])
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
            out = pipeline(
                dict(img_path=files[i % len(files)], sample_idx=i))
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
    cfg = load_benchmark_config(config, input_size, cfg_options)
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
    cfg = load_benchmark_config(path, input_size, cfg_options)
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
                entry, res = build_entry(path, batch_size, input_size,
                                         device, amp, cfg_options, compiled,
                                         log)
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
            cfg = load_benchmark_config(res.config, None, cfg_options)
            res.pipeline_images_per_s = measure_pipeline(
                cfg, pipeline_dir, res.batch, pipeline_images)
            log(f'{res.name}: training pipeline '
                f'{res.pipeline_images_per_s:.1f} images/s per worker')
    return results


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
            return (m.backbone != r.backbone, m.checkout != r.checkout,
                    m.compiled != r.compiled, i)

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
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
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
        this = next((r for r in own if r.config == other.config
                     and r.compiled == other.compiled), None)
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
                      and r.checkout == res.checkout and not r.compiled),
                     None)
        ratio = res.sec_per_step / eager.sec_per_step if eager else \
            float('nan')
        rows.append([
            res.name, f'{eager.sec_per_step:.3f}' if eager else 'n/a',
            f'{res.sec_per_step:.3f}', f'**{ratio:.2f}**',
            f'{res.compile_s:.1f}', str(res.graphs), str(res.graph_breaks),
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
                  [f'{k} %' for k in PROFILE_KINDS] +
                  ['matmul GFLOP/s'], rows)


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
