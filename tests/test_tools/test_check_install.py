# Copyright (c) um-mae contributors. All rights reserved.
"""tools/check_install.py: where mmcv's ops run, and what a build needs."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHECK = osp.join(REPO, 'tools', 'check_install.py')


def check(*args, env=None):
    full_env = dict(os.environ, PYTHONWARNINGS='ignore')
    full_env.pop('FORCE_CUDA', None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, CHECK, *args],
                          cwd=REPO,
                          env=full_env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.dense
def test_ops_run_on_cpu_and_cuda_is_reported():
    rc, out = check()
    assert rc == 0, out
    assert 'mmcv ops on CPU: ok (nms, roi_align)' in out
    if torch.cuda.is_available():
        assert 'mmcv ops on CUDA (' in out
    else:
        assert 'mmcv ops on CUDA: no CUDA device' in out


def test_missing_ops_name_the_fix(env_without_mmcv_ops):
    rc, out = check(env=env_without_mmcv_ops)
    assert rc == 1
    assert "mmcv ops: mmcv's compiled ops are missing" in out
    assert '`bash tools/install.sh --with-ops`' in out


@pytest.mark.dense
def test_force_cuda_needs_cuda_ops():
    from mmcv.ops import get_compiling_cuda_version
    rc, out = check(env=dict(FORCE_CUDA='1'))
    if get_compiling_cuda_version() == 'not available':
        assert rc == 1
        assert 'FORCE_CUDA=1 but mmcv has no CUDA ops; rebuild' in out
    else:
        assert 'mmcv ops compiled with CUDA: ' in out


def test_before_build_without_gpu_builds_cpu_ops():
    rc, out = check('--before-build', env=dict(CUDA_VISIBLE_DEVICES=''))
    assert rc == 0, out
    assert 'mmcv build: CPU ops only' in out


def _fake_cuda_home(tmp_path, release):
    """A CUDA_HOME whose bin/nvcc reports ``release``."""
    home = tmp_path / f'cuda-{release}'
    (home / 'bin').mkdir(parents=True)
    nvcc = home / 'bin' / 'nvcc'
    nvcc.write_text('#!/bin/sh\necho "Cuda compilation tools, release '
                    f'{release}, V{release}.0"\n')
    nvcc.chmod(0o755)
    return str(home)


@pytest.mark.skipif(
    torch.version.cuda is None,
    reason='a CPU-only torch build: FORCE_CUDA=1 stops before nvcc')
def test_before_build_checks_nvcc(tmp_path):
    env = dict(FORCE_CUDA='1', CUDA_VISIBLE_DEVICES='')
    major = int(torch.version.cuda.split('.')[0])
    # the CUDA ops need an nvcc ...
    rc, out = check(
        '--before-build', env=dict(env, CUDA_HOME=str(tmp_path / 'none')))
    assert rc == 1
    assert f'need nvcc of CUDA {torch.version.cuda}' in out
    assert 'does not run' in out and 'CUDA_HOME' in out
    # ... of torch's major version
    other = _fake_cuda_home(tmp_path, f'{major - 1}.8')
    rc, out = check('--before-build', env=dict(env, CUDA_HOME=other))
    assert rc == 1
    assert (f'is CUDA {major - 1}.8 but torch {torch.__version__} was built '
            f'with CUDA {torch.version.cuda}') in out
    same = _fake_cuda_home(tmp_path, torch.version.cuda)
    rc, out = check(
        '--before-build',
        env=dict(env, CUDA_HOME=same, TORCH_CUDA_ARCH_LIST='8.0;9.0'))
    assert rc == 0, out
    assert f'CPU and CUDA ops with {same}/bin/nvcc' in out
    assert 'architectures: 8.0;9.0' in out


def test_before_build_with_cpu_only_torch(tmp_path):
    # torch's own report of its CUDA build, replaced by None
    (tmp_path / 'sitecustomize.py'
     ).write_text('import torch\ntorch.version.cuda = None\n')
    rc, out = check(
        '--before-build',
        env=dict(
            FORCE_CUDA='1', CUDA_VISIBLE_DEVICES='', PYTHONPATH=str(tmp_path)))
    assert rc == 1
    assert 'the CUDA ops need a CUDA build of torch' in out
