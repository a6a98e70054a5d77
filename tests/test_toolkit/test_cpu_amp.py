# Copyright (c) um-mae contributors. All rights reserved.
"""``Float16ProductsInFloat32`` gives torch's own CPU float16 results.

The reference is torch's CPU float16 kernels themselves, run at sizes where
they are quick; the mode's results must have the same dtypes and agree
within one float16 rounding of the result (both sum float32 products, in
another order).
"""
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from um_mae.toolkit.cpu_amp import CPUAmpOptimWrapper, Float16ProductsInFloat32

# one float16 rounding of a result: 2**-10 relative, plus an absolute part
# for results that cancel to near zero
RTOL, ATOL = 2**-10, 2e-3


def _inputs(*shapes):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen).half() for s in shapes]


def _ops():
    a, b, c = _inputs((24, 40), (40, 16), (24, 16))
    x, y, z = _inputs((3, 24, 40), (3, 40, 16), (3, 24, 16))
    img, w, bias = _inputs((2, 8, 10, 10), (6, 8, 3, 3), (6, ))
    q, k, v = _inputs((2, 3, 20, 16), (2, 3, 20, 16), (2, 3, 20, 16))
    return {
        'mm': (lambda a, b: a @ b, (a, b)),
        'addmm': (torch.addmm, (c, a, b)),
        'linear': (F.linear, (a, b.t(), c[0, :])),
        'bmm': (torch.bmm, (x, y)),
        'baddbmm': (torch.baddbmm, (z, x, y)),
        'conv2d': (lambda i, w, b: F.conv2d(i, w, b, padding=1),
                   (img, w, bias)),
        'sdpa': (F.scaled_dot_product_attention, (q, k, v)),
    }


@pytest.mark.parametrize('name', list(_ops()))
def test_forward_and_backward_match_torch_float16(name):
    fn, args = _ops()[name]

    def run(mode):
        leaves = [a.clone().requires_grad_() for a in args]
        with mode:
            out = fn(*leaves)
            out.float().square().sum().backward()
        return out, [a.grad for a in leaves]

    ref, ref_grads = run(nullcontext())
    out, grads = run(Float16ProductsInFloat32())
    assert out.dtype == ref.dtype == torch.float16
    torch.testing.assert_close(out, ref, rtol=RTOL, atol=ATOL)
    for g, r in zip(grads, ref_grads):
        assert g.dtype == r.dtype == torch.float16
        scale = r.float().abs().max().item()
        torch.testing.assert_close(
            g, r, rtol=RTOL, atol=max(ATOL, scale * RTOL))


def test_overflow_stays_inf_and_other_dtypes_are_untouched():
    big = torch.full((4, 4), 200., dtype=torch.float16)
    with Float16ProductsInFloat32():
        # 4 * 200 * 200 = 160000 > 65504, the largest float16
        assert torch.isinf(big @ big).all()
        a = torch.randn(8, 8, dtype=torch.bfloat16)
        assert torch.equal(a @ a, torch.mm(a, a))
        b = torch.randn(8, 8)
        assert (b @ b).dtype == torch.float32


@pytest.mark.parametrize('dtype,active', [(torch.float16, True),
                                          (torch.bfloat16, False)])
def test_wrapper_uses_it_in_forward_and_backward(dtype, active, monkeypatch):
    seen = []
    dispatch = Float16ProductsInFloat32.__torch_dispatch__

    def spy(self, func, types, args=(), kwargs=None):
        seen.append(func)
        return dispatch(self, func, types, args, kwargs)

    monkeypatch.setattr(Float16ProductsInFloat32, '__torch_dispatch__', spy)
    model = torch.nn.Linear(4, 3)
    wrapper = CPUAmpOptimWrapper(
        dtype=dtype, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        loss = model(torch.randn(2, 4)).float().sum()
    forward = len(seen)
    wrapper.update_params(loss)
    assert (forward > 0) == active
    assert (len(seen) > forward) == active  # the backward pass too
    assert all(p.dtype == torch.float32 for p in model.parameters())
