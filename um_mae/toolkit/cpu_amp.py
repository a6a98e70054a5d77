# Copyright (c) um-mae contributors. All rights reserved.
"""A config's mixed-precision training step on CPU, for checks.

mmengine's ``AmpOptimWrapper`` refuses to start without a GPU and its
``autocast`` allows only bfloat16 on CPU. To check a config's AMP step
before a GPU is at hand (``tests/test_mixed_precision.py``,
``tools/gpu_check.py --device cpu``), :class:`CPUAmpOptimWrapper` is that
same wrapper (its ``loss_scale`` options, gradient clipping, update) with
two CPU substitutes: torch's CPU ``GradScaler`` and ``torch.autocast('cpu')``
in float16 or bfloat16.

Inside :func:`cpu_autocast`, mmcv's CPU kernels that exist only in
float32 run in float32: ``nms`` (the proposals of Mask / Faster R-CNN and
HTC) and ``RoIAlign`` (their RoI heads). Only on CPU and only for float16
/ bfloat16 inputs: mmcv's CUDA kernels take half precision, so on a GPU
nothing changes. Nothing else is kept in float32.

In float16, :class:`Float16ProductsInFloat32` (forward and backward)
computes the matrix products, convolutions and attention of float16
operands in float32 arithmetic and rounds the result to float16: the
numbers of a GPU's float16 GEMM (float16 in, float32 accumulation,
float16 out) and, within a float16 rounding, of torch's own CPU float16
kernels, which run about 100x slower than float32 on CPUs without native
float16 arithmetic (``tests/test_toolkit/test_cpu_amp.py``).
"""
import copy
import functools
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Iterator, Union
from unittest import mock

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map_only

__all__ = [
    'CPUAmpOptimWrapper', 'Float16ProductsInFloat32', 'cpu_autocast',
    'cpu_amp_optim_cfg'
]

_REDUCED = (torch.float16, torch.bfloat16)


_FLASH_CPU = '_scaled_dot_product_flash_attention_for_cpu'
#: the aten ops whose float16 CPU kernels are slow (forward and backward)
_FLOAT16_PRODUCT_OPS = frozenset(
    getattr(torch.ops.aten, name).default
    for name in ('mm', 'addmm', 'bmm', 'baddbmm', 'convolution',
                 'convolution_backward', _FLASH_CPU, _FLASH_CPU + '_backward'))


class Float16ProductsInFloat32(TorchDispatchMode):
    """Matrix products, convolutions and attention of float16 CPU tensors
    computed in float32, their results rounded to float16.

    Every other op, and these ops on other dtypes or devices, run as they
    are. The results have the dtypes torch's own kernels would give (taken
    from the op's meta kernel), so overflow past float16's range is an
    ``inf`` as before; only the arithmetic inside the op is float32, as in
    a GPU's float16 GEMM. Active in forward and backward passes run inside
    it.
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _FLOAT16_PRODUCT_OPS or not any(
                isinstance(t, torch.Tensor) and t.dtype == torch.float16
                and t.device.type == 'cpu'
                for t in tree_flatten((args, kwargs))[0]):
            return func(*args, **kwargs)

        def on(fn):
            return (tree_map_only(torch.Tensor, fn, args),
                    tree_map_only(torch.Tensor, fn, kwargs))

        meta_args, meta_kwargs = on(lambda t: t.to('meta'))
        expected = func(*meta_args, **meta_kwargs)
        up_args, up_kwargs = on(
            lambda t: t.float() if t.dtype == torch.float16 else t)
        out = func(*up_args, **up_kwargs)
        if isinstance(out, torch.Tensor):
            return out.to(expected.dtype)
        return type(out)(
            o.to(e.dtype) if isinstance(o, torch.Tensor) else o
            for o, e in zip(out, expected))


def _float32_nms(forward):
    """``NMSop.forward`` with float32 boxes and scores on CPU."""

    @functools.wraps(forward)
    def wrapped(ctx, bboxes, scores, *args, **kwargs):
        if bboxes.device.type == 'cpu' and bboxes.dtype in _REDUCED:
            bboxes, scores = bboxes.float(), scores.float()
        return forward(ctx, bboxes, scores, *args, **kwargs)

    return staticmethod(wrapped)


def _float32_roi_align(forward):
    """``RoIAlign.forward`` in float32 on CPU; the features come back in
    the input's dtype (mmdet writes them into a tensor of that dtype)."""

    @functools.wraps(forward)
    def wrapped(self, input, rois):
        if input.device.type == 'cpu' and (input.dtype in _REDUCED
                                           or rois.dtype in _REDUCED):
            with torch.autocast('cpu', enabled=False):
                out = forward(self, input.float(), rois.float())
            return out.to(input.dtype)
        return forward(self, input, rois)

    return wrapped


@contextmanager
def cpu_autocast(dtype: torch.dtype) -> Iterator[None]:
    """``torch.autocast('cpu', dtype)``, mmcv's float32-only CPU ops kept
    in float32 (see the module doc).

    Args:
        dtype (torch.dtype): ``torch.float16`` or ``torch.bfloat16``.
    """
    if dtype not in _REDUCED:
        raise ValueError(f'dtype {dtype} is not a mixed-precision type; use '
                         'torch.float16 or torch.bfloat16')
    with ExitStack() as stack:
        try:
            from mmcv.ops.nms import NMSop
            from mmcv.ops.roi_align import RoIAlign
        except ImportError:  # mmcv-lite: no detector runs here
            pass
        else:
            stack.enter_context(
                mock.patch.object(NMSop, 'forward',
                                  _float32_nms(NMSop.forward)))
            stack.enter_context(
                mock.patch.object(RoIAlign, 'forward',
                                  _float32_roi_align(RoIAlign.forward)))
        stack.enter_context(torch.autocast('cpu', dtype=dtype))
        yield


class CPUAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` on CPU.

    The same ``loss_scale`` options (``'dynamic'``, a float or a dict of
    ``GradScaler`` arguments) configure torch's CPU ``GradScaler``; the
    forward pass of ``optim_context`` runs under :func:`cpu_autocast` in
    ``dtype`` (the config's ``dtype`` does not apply: CPU checks run both
    float16 and bfloat16).

    Args:
        dtype (torch.dtype): ``torch.float16`` or ``torch.bfloat16``.
        **kwargs: ``AmpOptimWrapper``'s arguments.
    """

    def __init__(self, dtype: torch.dtype = torch.float16, **kwargs) -> None:
        import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
        kwargs.pop('dtype', None)
        with mock.patch.object(amp, 'is_cuda_available', lambda: True), \
                mock.patch.object(amp, 'GradScaler',
                                  functools.partial(torch.amp.GradScaler,
                                                    'cpu')):
            super().__init__(dtype=dtype, **kwargs)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with OptimWrapper.optim_context(self, model), \
                cpu_autocast(self.cast_dtype), self._products():
            yield

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        with self._products():
            super().backward(loss, **kwargs)

    def _products(self):
        """:class:`Float16ProductsInFloat32` in float16 (bfloat16 has
        fast CPU kernels)."""
        if self.cast_dtype == torch.float16:
            return Float16ProductsInFloat32()
        return nullcontext()


def cpu_amp_optim_cfg(optim_wrapper: dict, dtype: Union[str,
                                                        torch.dtype]) -> dict:
    """A config's ``optim_wrapper`` as a :class:`CPUAmpOptimWrapper`.

    ``AmpOptimWrapper`` keeps its options; a plain ``OptimWrapper`` becomes
    AMP with a dynamic loss scale, as ``tools/train.py --amp`` makes it.
    Gradient accumulation is left out (every step updates).

    Args:
        optim_wrapper (dict): The config's ``optim_wrapper``.
        dtype (str | torch.dtype): ``'float16'`` / ``'bfloat16'`` or the
            torch dtype.

    Returns:
        dict: For ``mmengine.optim.build_optim_wrapper``.
    """
    cfg = copy.deepcopy(dict(optim_wrapper))
    if 'AmpOptimWrapper' not in str(cfg.get('type')):
        cfg.setdefault('loss_scale', 'dynamic')
    cfg.pop('_scope_', None)
    cfg.pop('accumulative_counts', None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    cfg.update(type=CPUAmpOptimWrapper, dtype=dtype)
    return cfg
