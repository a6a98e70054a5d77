# Copyright (c) um-mae contributors. All rights reserved.
"""tools/benchmark_pretrain.py and um_mae.toolkit.benchmark on tiny configs.

Only what does not depend on the machine's speed is asserted: the table's
layout, token counts and ratios, the synthetic batches.
"""
import csv
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import run_tool

from um_mae.toolkit.benchmark import (TABLE_COLUMNS, BenchmarkResult,
                                      EncoderInputs, EncoderTokenCounter,
                                      build_model_and_optimizer, encoder_step,
                                      flop_counter, format_markdown,
                                      model_state_bytes, resolve_baselines,
                                      train_step)
from um_mae.toolkit.pretrain_inputs import (build_synthetic_batch,
                                            load_pretrain_config, quiet_logger)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmark_pretrain.py')
UMMAE_PVT = osp.join(REPO, 'configs', 'pretrain', 'ummae',
                     'ummae_pvt-demo_1xb8-10e_demo-128px.py')
SIMMIM_PVT = osp.join(REPO, 'configs', 'pretrain', 'simmim',
                      'simmim_pvt-demo_1xb8-10e_demo-128px.py')
UMMAE_SWIN = osp.join(REPO, 'configs', 'pretrain', 'ummae',
                      'ummae_swin-demo_1xb8-10e_demo-128px.py')
MAE_VIT = osp.join(REPO, 'configs', 'pretrain', 'mae',
                   'mae_vit-tiny-p16_1xb8-10e_demo-128px.py')


@pytest.fixture(scope='module')
def tool_run(tmp_path_factory):
    """One CPU run of the tool: UM-MAE vs SimMIM on the demo PVT, 64 px."""
    out = str(tmp_path_factory.mktemp('bench'))
    rc, output = run_tool(TOOL, UMMAE_PVT, SIMMIM_PVT, '--batch-size', '2',
                          '--input-size', '64', '--warmup', '1', '--rounds',
                          '1', '--threads', '1', '--device', 'cpu',
                          '--baseline', 'simmim', '--out-dir', out)
    assert rc == 0, output
    return out, output


@pytest.mark.slow
def test_tool_writes_table_csv_and_png(tool_run):
    out, stdout = tool_run
    with open(osp.join(out, 'benchmark.md')) as f:
        md = f.read()
    header = next(line for line in md.splitlines() if line.startswith('|'))
    assert [c.strip() for c in header.strip('|').split('|')] == \
        list(TABLE_COLUMNS)
    assert header in stdout
    assert 'batch 2, 64 px, fp32' in md
    with open(osp.join(out, 'benchmark.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_tool_token_ratio_is_a_quarter(tool_run):
    out, _ = tool_run
    with open(osp.join(out, 'benchmark.csv')) as f:
        rows = {r['method']: r for r in csv.DictReader(f)}
    ummae, simmim = rows['UMMAE'], rows['CompilableSimMIM']
    # 64 px, 4-px patches: SimMIM's full 16x16 map vs the compact 8x8 one
    assert int(simmim['encoder_tokens']) == 256
    assert int(ummae['encoder_tokens']) == 64
    assert float(ummae['token_ratio']) == 0.25
    assert float(simmim['token_ratio']) == 1.0
    assert ummae['baseline'] == simmim['config']
    for row in (ummae, simmim):
        assert int(row['batch']) == 2 and int(row['input']) == 64
        assert float(row['sec_per_step']) > 0
        assert float(row['enc_sec_per_step']) > 0
        assert len(row['enc_step_times'].split()) == 1
        assert float(row['peak_mem_mib']) > 0
        assert float(row['gflops']) > float(row['enc_gflops']) > 0
        assert len(row['step_times'].split()) == 1
    # the compact encoder does about a quarter of the full encoder's work
    enc_ratio = float(ummae['enc_gflops']) / float(simmim['enc_gflops'])
    assert 0.2 < enc_ratio < 0.35


def test_tool_rejects_unknown_baseline(tmp_path):
    rc, output = run_tool(TOOL, UMMAE_PVT, '--input-size', '64',
                          '--batch-size', '1', '--warmup', '0', '--rounds',
                          '1', '--no-memory', '--threads', '1', '--baseline',
                          'nonexistent', '--out-dir', str(tmp_path))
    assert rc != 0
    assert "no config name contains 'nonexistent'" in output


@pytest.mark.parametrize('config, strategy_keys', [
    (UMMAE_PVT, {'mask', 'secondary_mask'}),
    (SIMMIM_PVT, {'mask'}),
])
def test_synthetic_batch_uses_the_config_masks(config, strategy_keys):
    cfg = load_pretrain_config(config, 64)
    batch = build_synthetic_batch(cfg, 3, 64, seed=1)
    assert batch['inputs'].shape == (3, 3, 64, 64)
    assert batch['inputs'].dtype == torch.uint8
    samples = batch['data_samples']
    assert len(samples) == 3
    for key in strategy_keys:
        masks = np.stack([np.asarray(ds.get(key)) for ds in samples])
        assert masks.shape == (3, 4, 4)
        # 75% of the tokens dropped (UM: plus a quarter of the kept ones)
        expected = 12 if key == 'mask' else 13
        assert (masks.reshape(3, -1).sum(1) == expected).all()
    # reproducible
    again = build_synthetic_batch(cfg, 3, 64, seed=1)
    assert torch.equal(batch['inputs'], again['inputs'])
    assert np.array_equal(
        np.asarray(samples[0].mask), np.asarray(again['data_samples'][0].mask))


@pytest.mark.parametrize(
    'config, tokens',
    [
        (UMMAE_SWIN, 8 * 8),
        (MAE_VIT, 4 + 1),  # 25% of 4x4 tokens visible, plus the class token
    ])
def test_encoder_tokens_and_state(config, tokens):
    quiet_logger()
    torch.set_num_threads(1)
    cfg = load_pretrain_config(config, 64)
    model, optim_wrapper = build_model_and_optimizer(cfg)
    counter = EncoderTokenCounter(model.backbone)
    before = model_state_bytes(model, optim_wrapper)
    train_step(model, optim_wrapper, build_synthetic_batch(cfg, 2, 64))
    counter.remove()
    assert counter.tokens == tokens
    # AdamW adds two moments per trainable parameter (and a step count)
    trainable = sum(p.numel() * 4 for p in model.parameters()
                    if p.requires_grad)
    after = model_state_bytes(model, optim_wrapper)
    assert 2 * trainable <= after - before <= 2 * trainable + 8 * 1000


def _result(name, backbone, sec, mem, tokens):
    return BenchmarkResult(
        config=f'configs/{name}.py',
        method=name.split('_')[0],
        backbone=backbone,
        batch=8,
        input=256,
        step_times=[sec],
        enc_step_times=[sec / 2],
        peak_mem_mib=mem,
        state_mem_mib=mem / 2,
        encoder_tokens=tokens,
        gflops=sec,
        enc_gflops=sec / 2)


def test_baselines_follow_the_backbone():
    results = [
        _result('ummae_pvt', 'UMPVT-small', 1., 100., 1024),
        _result('simmim_pvt', 'UMPVT-small', 2., 400., 4096),
        _result('ummae_swin', 'UMSwinTransformer-tiny', 1., 100., 1024),
        _result('simmim_swin', 'UMSwinTransformer-tiny', 4., 200., 4096),
    ]
    assert resolve_baselines(results, 'simmim') == [1, 1, 3, 3]
    assert resolve_baselines(results, 2) == [2] * 4
    assert resolve_baselines(results, '-1') == [3] * 4
    with pytest.raises(ValueError, match='out of range'):
        resolve_baselines(results, 4)
    # a name that starts with the pattern wins over one that contains it
    vit = [
        _result('ummae_vit', 'UMViT-base', 1., 100., 50),
        _result('mae_vit', 'MAEViT-base', 1., 100., 50),
    ]
    assert resolve_baselines(vit, 'mae') == [1, 1]
    assert resolve_baselines(vit, 'mae_vit') == [1, 1]
    assert resolve_baselines(vit, 'vit') == [0, 1]  # contained, own backbone
    md = format_markdown(results, 'simmim').splitlines()
    assert len(md) == 2 + len(results)
    cells = dict(
        zip(TABLE_COLUMNS, (c.strip() for c in md[4].strip('|').split('|'))))
    assert cells['time_ratio'] == '0.25'
    assert cells['enc_time_ratio'] == '0.25'
    assert cells['mem_ratio'] == '0.50'
    assert cells['token_ratio'] == '0.25'
    assert cells['baseline'] == 'simmim_swin'


def test_encoder_step_runs_the_backbone_on_captured_inputs():
    quiet_logger()
    torch.set_num_threads(1)
    cfg = load_pretrain_config(UMMAE_PVT, 64)
    model, optim_wrapper = build_model_and_optimizer(cfg)
    inputs = EncoderInputs(model.backbone)
    with pytest.raises(ValueError, match='no backbone inputs were captured'):
        encoder_step(model, inputs)
    train_step(model, optim_wrapper, build_synthetic_batch(cfg, 2, 64))
    inputs.remove()
    img, mask, secondary = inputs.args
    assert img.shape == (2, 3, 64, 64) and img.is_floating_point()
    assert mask.shape == secondary.shape == (2, 4, 4)
    calls = []
    handle = model.neck.register_forward_hook(lambda *a: calls.append(1))
    grads = []
    model.backbone.vis_mask_token.register_hook(lambda g: grads.append(g))
    assert encoder_step(model, inputs) > 0
    handle.remove()
    assert not calls  # the decoder does not run
    assert grads and grads[0].abs().sum() > 0  # the backward reached it
    # the gradients do not leak into the next training step
    assert all(p.grad is None for p in model.backbone.parameters())


@pytest.mark.parametrize('amp, dtype', [('bf16', torch.bfloat16),
                                        ('fp16', torch.float16)])
def test_amp_steps_run_in_low_precision_on_cpu(amp, dtype):
    quiet_logger()
    torch.set_num_threads(1)
    cfg = load_pretrain_config(UMMAE_PVT, 64)
    model, optim_wrapper = build_model_and_optimizer(cfg, amp=amp)
    seen = []
    linear = next(m for m in model.backbone.modules()
                  if isinstance(m, torch.nn.Linear))
    handles = [
        m.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
        for m in (model.neck.decoder_pred, linear)
    ]
    inputs = EncoderInputs(model.backbone)
    before = model.neck.decoder_pred.weight.detach().clone()
    train_step(model, optim_wrapper, build_synthetic_batch(cfg, 2, 64), amp)
    inputs.remove()
    assert set(seen) == {dtype}
    weight = model.neck.decoder_pred.weight
    assert weight.dtype == torch.float32  # master weights stay fp32
    assert torch.isfinite(weight).all() and not torch.equal(weight, before)
    seen.clear()
    encoder_step(model, inputs, amp)
    assert seen == [dtype]  # only the backbone ran, in low precision
    for h in handles:
        h.remove()


def test_unknown_amp_is_refused():
    cfg = load_pretrain_config(UMMAE_PVT, 64)
    with pytest.raises(ValueError, match="amp 'fp8' is not supported"):
        build_model_and_optimizer(cfg, amp='fp8')


def _tool_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('benchmark_pretrain_tool',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args],
                          cwd=REPO,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'),
                          capture_output=True,
                          text=True,
                          timeout=900)


@pytest.mark.slow
def test_checkout_is_timed_in_the_same_rounds(tmp_path):
    """--checkout: the other checkout's code and configs build its rows."""
    import shutil
    other = tmp_path / 'other'
    ignore = shutil.ignore_patterns('__pycache__')
    shutil.copytree(osp.join(REPO, 'um_mae'), other / 'um_mae', ignore=ignore)
    shutil.copytree(
        osp.join(REPO, 'configs'), other / 'configs', ignore=ignore)
    # the other checkout's copy of the config has a deeper decoder
    config = other / osp.relpath(UMMAE_PVT, REPO)
    text = config.read_text()
    assert 'depth=1,' in text
    config.write_text(text.replace('depth=1,', 'depth=2,'))
    out = tmp_path / 'out'
    proc = _run_tool(UMMAE_PVT, '--checkout', str(other), '--batch-size', '1',
                     '--input-size', '64', '--warmup', '0', '--rounds', '2',
                     '--threads', '1', '--no-memory', '--profile', '--out-dir',
                     str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # each checkout's models ran with its own um_mae
    assert f'um_mae from {other}' in proc.stderr
    assert f'um_mae from {REPO}' in proc.stderr
    with open(out / 'benchmark.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['checkout'] for r in rows][1] == 'other'
    this, theirs = rows
    assert theirs['config'].endswith('@other')
    assert float(theirs['gflops']) > float(this['gflops'])
    for row in rows:
        assert len(row['step_times'].split()) == 2
    md = (out / 'benchmark.md').read_text()
    assert 'speed-up of this checkout' in md
    ab_row = next(line for line in md.splitlines()
                  if line.startswith('| ummae_pvt-demo') and '(other)' in line)
    speedup = float(ab_row.split('|')[4].strip().strip('*'))
    ratio = float(theirs['sec_per_step']) / float(this['sec_per_step'])
    assert speedup == pytest.approx(ratio, abs=0.006)
    # --profile: both checkouts' steps, split by kind of operator
    lines = md[md.index('by kind of operator'):].splitlines()
    rows = [line for line in lines if line.startswith('| ummae_pvt-demo')]
    assert len(rows) == 2
    for line in rows:
        cells = [c.strip() for c in line.strip('|').split('|')]
        shares = [float(c) for c in cells[2:-1]]
        assert sum(shares) == pytest.approx(100, abs=0.5)
        assert shares[0] > 0  # matmul
        assert float(cells[-1]) > 0  # matmul GFLOP/s


@pytest.mark.slow
def test_compile_rows_one_graph_and_its_timing(tmp_path):
    """--compile with dynamo's tracing-only backend (cheap): one forward
    graph between the eager preprocessing and update."""
    rc, output = run_tool(TOOL, UMMAE_PVT, '--compile', '--compile-backend',
                          'eager', '--batch-size', '2', '--input-size', '64',
                          '--warmup', '1', '--rounds', '1', '--threads', '1',
                          '--no-memory', '--out-dir', str(tmp_path))
    assert rc == 0, output
    with open(tmp_path / 'benchmark.csv') as f:
        eager, compiled = list(csv.DictReader(f))
    assert eager['compiled'] == 'False' and compiled['compiled'] == 'True'
    assert compiled['config'].endswith('+compile')
    assert int(compiled['graphs']) == 1
    # the eager preprocessing and parameter update
    assert int(compiled['graph_breaks']) == 2
    # mmengine's iteration counter becomes dynamic once, then no more
    assert int(compiled['recompiles']) <= 1
    assert float(compiled['compile_s']) > 0
    assert 'backend eager' in output
    assert float(compiled['gflops']) == float(eager['gflops'])


@pytest.mark.parametrize('args, patch, message', [
    (['--compile'], 'no_dynamo', 'error: torch.compile is not supported'),
    (['--compile'], 'no_compiler',
     'error: torch.compile (inductor) on CPU needs a C++ compiler'),
    (['--compile', '--compile-backend', 'nope'
      ], None, "error: torch.compile backend 'nope' is not known"),
    (['--input-size', '64'
      ], 'missing_config', "error: config 'configs/nope.py' does not exist"),
])
def test_bad_options_give_one_line(monkeypatch, args, patch, message):
    import torch._dynamo
    import torch._inductor.cpp_builder as cpp_builder
    configs = [UMMAE_PVT]
    if patch == 'no_dynamo':
        monkeypatch.setattr(torch._dynamo, 'is_dynamo_supported',
                            lambda: False)
    elif patch == 'no_compiler':

        def no_compiler():
            raise RuntimeError('no C++ compiler found\nmore details')

        monkeypatch.setattr(cpp_builder, 'get_cpp_compiler', no_compiler)
    elif patch == 'missing_config':
        configs = ['configs/nope.py']
    with pytest.raises(SystemExit) as exc:
        _tool_module().main([*configs, *args, '--no-memory'])
    text = str(exc.value)
    assert text.startswith(message) and '\n' not in text


@pytest.mark.slow
def test_pipeline_throughput_and_loader_workers(tmp_path):
    from um_mae.toolkit.benchmark import measure_pipeline
    from um_mae.toolkit.demo_data import make_pretrain_images
    make_pretrain_images(str(tmp_path / 'images'), num_images=4, size=160)
    cfg = load_pretrain_config(UMMAE_PVT)
    threads = torch.get_num_threads()
    speed = measure_pipeline(
        cfg, str(tmp_path / 'images'), batch_size=2, num_images=6, rounds=1)
    assert speed > 0
    assert torch.get_num_threads() == threads  # restored
    result = _result('ummae_pvt', 'UMPVT-demo', 0.5, 100., 64)
    result.pipeline_images_per_s = 10.
    assert result.loader_workers == 2  # 16 images/s needed, 10 per worker
    result.pipeline_images_per_s = 16.
    assert result.loader_workers == 1
    with pytest.raises(ValueError, match='make_demo_data.py pretrain'):
        measure_pipeline(cfg, str(tmp_path / 'empty'))


def test_ab_table_and_baselines_stay_within_a_checkout():
    from um_mae.toolkit.benchmark import format_ab, paired_ratios

    def row(name, checkout, times):
        res = _result(name, 'UMPVT-small', 1., 100., 1024)
        res.checkout, res.step_times = checkout, times
        return res

    results = [
        row('ummae_pvt', 'new', [1.0, 2.0, 1.0]),
        row('simmim_pvt', 'new', [2.0, 4.0, 2.0]),
        row('ummae_pvt', 'old', [1.5, 2.0, 1.2]),
        row('simmim_pvt', 'old', [2.0, 4.0, 2.0]),
    ]
    # each row is compared with the SimMIM row of its own checkout
    assert resolve_baselines(results, 'simmim') == [1, 1, 3, 3]
    assert paired_ratios(results[0], results[2]) == [1.5, 1.0, 1.2]
    lines = format_ab(results).splitlines()
    assert len(lines) == 4
    cells = [c.strip() for c in lines[2].strip('|').split('|')]
    assert cells[0] == 'ummae_pvt'
    assert cells[3] == '**1.50**'  # median 1.5 s vs median 1.0 s
    # step by step: 1.5, 1.0, 1.2
    assert cells[4] == '1.20 (1.00 - 1.50)'
    assert format_ab(results[:2]) == ''


def test_cpu_clock():
    from um_mae.toolkit.benchmark import measure as benchmark
    benchmark.set_clock('cpu')
    try:
        assert benchmark._clock is time.process_time
    finally:
        benchmark.set_clock('wall')
    assert benchmark._clock is time.perf_counter
    with pytest.raises(ValueError, match="clock 'gpu' is not known"):
        benchmark.set_clock('gpu')


def test_profile_step_splits_a_step_by_operator_kind():
    from um_mae.toolkit.benchmark import (PROFILE_KINDS, build_entry,
                                          profile_step)
    quiet_logger()
    torch.set_num_threads(1)
    entry, _ = build_entry(UMMAE_PVT, 2, 64)
    times = profile_step(entry)
    assert set(times) == set(PROFILE_KINDS) | {'matmul_gflop'}
    # the matrix products of one step: most of the FlopCounter's count
    # (which also counts attention and convolutions)
    with flop_counter() as flops:
        train_step(entry['model'], entry['optim_wrapper'], entry['batches'][0])
    total = flops.get_total_flops() / 1e9
    assert 0.5 * total < times['matmul_gflop'] <= total
    # the demo recipe's AdamW (not fused) runs ops under Optimizer.step
    for kind in ('matmul', 'attention', 'gelu', 'norms', 'optimizer'):
        assert times[kind] > 0, kind
