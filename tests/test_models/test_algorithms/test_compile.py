# Copyright (c) um-mae contributors. All rights reserved.
"""torch.compile of the pre-training forward on the demo models.

The data preprocessing and the loss of UM-MAE (PVT, Swin) and SimMIM form
one graph (``fullgraph=True`` raises at any graph break), are compiled once
per input shape, and give eager's loss and gradients. Most tests trace with
the ``aot_eager`` backend (dynamo + AOT autograd, no code generation) to
keep them short; one runs inductor, the backend of ``compile=True``.
"""
import os.path as osp

import pytest
import torch
import torch._dynamo
from torch._dynamo.backends.debugging import aot_eager
from torch._dynamo.utils import counters

from um_mae.toolkit.benchmark import build_model_and_optimizer
from um_mae.toolkit.pretrain_inputs import (build_synthetic_batch,
                                            load_pretrain_config, quiet_logger)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
PRETRAIN = osp.join(REPO, 'configs', 'pretrain')
UMMAE_PVT = osp.join(PRETRAIN, 'ummae',
                     'ummae_pvt-demo_1xb8-10e_demo-128px.py')
UMMAE_SWIN = osp.join(PRETRAIN, 'ummae',
                      'ummae_swin-demo_1xb8-10e_demo-128px.py')
SIMMIM_PVT = osp.join(PRETRAIN, 'simmim',
                      'simmim_pvt-demo_1xb8-10e_demo-128px.py')


def _model_and_batches(config, sizes):
    quiet_logger()
    torch.manual_seed(0)
    cfg = load_pretrain_config(config, 64)
    model, _ = build_model_and_optimizer(cfg)
    batches = [
        build_synthetic_batch(cfg, n, 64, seed=i) for i, n in enumerate(sizes)
    ]
    return model, batches


def _loss_fn(model):

    def loss(data):
        data = model.data_preprocessor(data, True)
        return model(**data, mode='loss')['loss']

    return loss


def _loss_and_grads(model, fn, data):
    model.zero_grad(set_to_none=True)
    loss = fn(data)
    loss.backward()
    return loss.detach(), {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.slow
@pytest.mark.parametrize('config, sizes', [
    (UMMAE_PVT, [2, 2, 3]),
    (UMMAE_SWIN, [2, 2]),
    (SIMMIM_PVT, [2, 2]),
])
def test_one_graph_per_shape_and_eager_results(config, sizes):
    torch.set_num_threads(1)
    model, batches = _model_and_batches(config, sizes)
    eager = _loss_fn(model)
    torch._dynamo.reset()
    compiled = torch.compile(eager, backend='aot_eager', fullgraph=True)
    graphs = counters['stats']['unique_graphs']
    for data in batches:
        loss, grads = _loss_and_grads(model, compiled, data)
        ref_loss, ref_grads = _loss_and_grads(model, eager, data)
        torch.testing.assert_close(loss, ref_loss)
        assert set(grads) == set(ref_grads) and grads
        for name, grad in ref_grads.items():
            torch.testing.assert_close(grads[name], grad, msg=name)
    # new masks of the same shape reuse the graph; a new batch size
    # compiles once
    assert counters['stats']['unique_graphs'] - graphs == len(set(sizes))


@pytest.mark.slow
def test_inductor_loss_equals_eager():
    torch.set_num_threads(1)
    model, batches = _model_and_batches(UMMAE_PVT, [2, 2])
    eager = _loss_fn(model)
    torch._dynamo.reset()
    compiled = torch.compile(eager, fullgraph=True)  # inductor
    for data in batches:
        loss, grads = _loss_and_grads(model, compiled, data)
        ref_loss, ref_grads = _loss_and_grads(model, eager, data)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
        for name, grad in ref_grads.items():
            torch.testing.assert_close(
                grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_bad_mask_is_refused_in_eager_steps():
    """The value checks are left out while dynamo traces, not in eager."""
    model, batches = _model_and_batches(UMMAE_PVT, [2])
    data = model.data_preprocessor(batches[0], True)
    for sample in data['data_samples']:
        sample.set_mask(torch.zeros_like(sample.mask))  # keeps every token
    with pytest.raises(ValueError, match='not a uniform mask'):
        model(**data, mode='loss')


@pytest.mark.slow
def test_compiled_train_step_follows_eager_training():
    """mmengine's compile=True target: ``train_step`` under torch.compile.

    Four steps on batches whose metainfo differs (as real images do)
    compile the forward once, plus once more when mmengine's iteration
    counter first changes; the losses follow an eager twin step by step,
    so backward and update ran as in eager. The compiled graphs are counted
    and their calls too: a ``torch.compile`` that silently compiled nothing
    (planted: ``step = model.train_step``, or ``torch.compile(...,
    disable=True)``) follows eager trivially and fails here."""
    torch.set_num_threads(1)
    quiet_logger()
    cfg = load_pretrain_config(UMMAE_PVT, 64)
    batches = [build_synthetic_batch(cfg, 2, 64, seed=i) for i in range(4)]
    for i, batch in enumerate(batches):
        for j, sample in enumerate(batch['data_samples']):
            sample.set_metainfo(
                dict(
                    sample_idx=2 * i + j,
                    ori_shape=(100 + i, 90 + j),
                    img_path=f'{i}_{j}.jpg'))
    twins = []
    for _ in range(2):
        torch.manual_seed(0)
        twins.append(build_model_and_optimizer(cfg))
    (model, optim), (ref_model, ref_optim) = twins
    torch._dynamo.reset()
    calls = []

    def counting_aot_eager(graph, example_inputs):
        compiled = aot_eager(graph, example_inputs)

        def run(*args):
            calls.append(1)
            return compiled(*args)

        return run

    step = torch.compile(model.train_step, backend=counting_aot_eager)
    graphs = counters['stats']['unique_graphs']
    for i, data in enumerate(batches):
        before = len(calls)
        loss = step(data, optim)['loss']
        ref_loss = ref_model.train_step(data, ref_optim)['loss']
        torch.testing.assert_close(loss, ref_loss)
        assert len(calls) > before, f'step {i} ran no compiled graph'
    assert 1 <= counters['stats']['unique_graphs'] - graphs <= 2
