# Copyright (c) um-mae contributors. All rights reserved.
"""tools/gpu_check.py in its tiny CPU mode: the code a GPU machine runs."""
import importlib.util
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'gpu_check', osp.join(REPO, 'tools', 'gpu_check.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_table_matches_gpu_names():
    tool = _tool()
    assert tool.peak_tflops('NVIDIA H100 80GB HBM3') == 989
    assert tool.peak_tflops('NVIDIA H100 PCIe') == 756
    assert tool.peak_tflops('NVIDIA A100-SXM4-80GB') == 312
    assert tool.peak_tflops('NVIDIA L40S') == 362
    assert tool.peak_tflops('NVIDIA L4') == 121
    assert tool.peak_tflops('Tesla V100-SXM2-32GB') is None  # no bf16


@pytest.mark.slow
def test_cpu_mode_writes_the_report(tmp_path):
    """One backbone, one precision, 2 dense iterations: every part of the
    report is there, with numbers or a reason."""
    tool = _tool()
    tool.main([
        '--device',
        'cpu',
        '--out-dir',
        str(tmp_path),
        '--only',
        'pvt',
        '--amp',
        'bf16',
        '--iters',
        '2',
        '--compile-backend',
        'eager',
        '--peak-tflops',
        '1',
        '--budget-s',
        '3600'  # a shared CPU: no part is skipped for time
    ])
    text = (tmp_path / 'gpu_check.md').read_text()
    assert 'GPU: none (CPU, tiny mode)' in text
    assert '## 1. tools/check_install.py' in text
    assert re.search(r'exit status \d', text)
    for section in ('## 2. 2 training iterations of gfl_',
                    '## 3. 2 training iterations of pvt-small_ummae-ft_'
                    'upernet'):
        body = text.split(section)[1].split('##')[0]
        # numbers, or the reason the part could not run here
        assert 'all finite' in body or 'skipped: ' in body, body
    rows = re.findall(
        r'\| PVT-S \| (ummae|simmim) \| 2 \| bf16 \| (eager|compile '
        r'\(eager\)) \| ([\d.]+) \| nan \| ([\d.]+) \| ([\d.]+)% \|', text)
    assert {(r[0], r[1])
            for r in rows} == {(m, c)
                               for m in ('ummae', 'simmim')
                               for c in ('eager', 'compile (eager)')}, text
    for _, _, images_per_s, gflops, mfu in rows:
        assert float(images_per_s) > 0 and float(gflops) > 0
        assert float(mfu) >= 0
