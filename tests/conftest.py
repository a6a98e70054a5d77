# Copyright (c) um-mae contributors. All rights reserved.
import functools
import io
import logging
import os
import os.path as osp
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.logging import MMLogger

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(*args, env=None, cwd=REPO_ROOT, timeout=1200):
    """Run ``python *args`` with this interpreter (warnings off).

    Returns:
        tuple[int, str]: The exit code and stdout + stderr.
    """
    full_env = dict(os.environ, PYTHONWARNINGS='ignore')
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *args],
                          cwd=cwd,
                          env=full_env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


REFERENCE_DIR = os.environ.get(
    'UM_MAE_REFERENCE',
    osp.join(osp.dirname(REPO_ROOT), 'shared', 'reference'))


def load_reference(name):
    """Load one official-model fixture file (see shared/reference/README.md).

    In CI the fixtures must be there; elsewhere a missing set skips the test.
    """
    path = osp.join(REFERENCE_DIR, name)
    if not osp.exists(path):
        msg = (f'reference fixture {path} not found; set UM_MAE_REFERENCE '
               'to the folder holding the official-model fixtures')
        if os.environ.get('CI'):
            pytest.fail(msg)
        pytest.skip(msg)
    return torch.load(path, weights_only=True)


@functools.lru_cache()
def _dense_stack_error():
    """Why mmdet / mmseg models cannot run here, with the fix; or None."""
    from um_mae.toolkit.cli import mmcv_ops_error
    error = mmcv_ops_error()
    if error:
        return error
    for name in ('mmdet', 'mmseg'):
        try:
            __import__(name)
        except ImportError as e:
            return (f'{name} does not import ({e}); install it with '
                    '`bash tools/install.sh --with-ops`')
    return None


_DENSE_CONFIGS = tuple(
    osp.join(REPO_ROOT, 'configs', task) + osp.sep for task in ('det', 'seg'))


def pytest_configure(config):
    """On the OneDL fork, let ``Config.fromfile`` find ``mmseg::`` bases, as
    the launcher does (``um_mae.engine.config_bases``)."""
    from um_mae.engine import find_renamed_packages
    find_renamed_packages()


def pytest_collection_modifyitems(items):
    """A test parametrized with a config under ``configs/{det,seg}/`` is a
    ``dense`` test too (so is every config added there later)."""
    for item in items:
        params = getattr(getattr(item, 'callspec', None), 'params', {})
        if any(
                isinstance(value, str) and osp.abspath(
                    osp.join(REPO_ROOT, value)).startswith(_DENSE_CONFIGS)
                for value in params.values()):
            item.add_marker(pytest.mark.dense)


def pytest_runtest_setup(item):
    """Skip ``@pytest.mark.dense`` tests, with the reason, when mmdet / mmseg
    or mmcv's compiled ops are missing (``install.sh --pretrain-only``).

    CI installs everything: there a missing piece fails the test instead.
    """
    if item.get_closest_marker('dense') is None:
        return
    error = _dense_stack_error()
    if error:
        msg = f'needs mmdet / mmseg / mmcv.ops: {error}'
        if os.environ.get('CI'):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def env_without_mmcv_ops(tmp_path):
    """Environment variables under which ``import mmcv.ops`` fails.

    For subprocesses: a ``sitecustomize`` blocks ``mmcv.ops`` the way a
    pre-training-only install (mmcv-lite) lacks it.
    """
    folder = tmp_path / 'no_mmcv_ops'
    folder.mkdir()
    (folder / 'sitecustomize.py'
     ).write_text("import sys\nsys.modules['mmcv.ops'] = None\n")
    path = os.pathsep.join(
        p for p in (str(folder), os.environ.get('PYTHONPATH')) if p)
    return dict(PYTHONPATH=path)


@pytest.fixture
def reference():
    return load_reference


@pytest.fixture(autouse=True)
def _isolate_default_scope():
    """Undo ``init_default_scope`` calls of a test.

    mmengine's current default scope is the most recently created one and
    decides which toolbox registry ``MODELS.build`` searches first; a test
    that sets ``mmdet`` must not make the next test's mmpretrain builds
    fail.
    """
    from mmengine.registry import DefaultScope
    before = set(DefaultScope._instance_dict)
    yield
    for name in list(DefaultScope._instance_dict):
        if name not in before:
            DefaultScope._instance_dict.pop(name)


@pytest.fixture
def mm_log():
    """A fresh current mmengine logger; call the fixture for its text.

    It is removed again afterwards, so later tests log to the logger that
    was current before.
    """
    name = f'test-{uuid.uuid4().hex}'
    logger = MMLogger.get_instance(name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    yield stream.getvalue
    logger.removeHandler(handler)
    MMLogger._instance_dict.pop(name, None)


# the tiny models of the official-model fixtures (config['kwargs'] of the
# files in shared/reference/; see its README.md). PVT's sr_ratios are the
# full-image ones, pre-training halves them (fixture: 4/2/1/1)
PVT_FIXTURE_ARCH = dict(
    embed_dims=[16, 32, 40, 64],
    depths=[1, 2, 1, 1],
    num_heads=[1, 2, 5, 8],
    mlp_ratios=[8, 8, 4, 4],
    sr_ratios=[8, 4, 2, 1])
SWIN_FIXTURE_ARCH = dict(
    embed_dims=12,
    depths=[2, 2, 2, 2],
    num_heads=[1, 2, 4, 8],
    pos_mlp_dims=16)


def mask_data_samples(mask, secondary_mask=None):
    """One ``DataSample`` per image carrying its masks, as the pipeline
    leaves them: ``mask`` a tensor, ``secondary_mask`` (an extra algorithm
    key, which ``PackInputs`` does not convert) a numpy array.

    Args:
        mask (Tensor): ``(N, h, w)``.
        secondary_mask (Tensor, optional): ``(N, h, w)``. Defaults to None.
    """
    from mmpretrain.structures import DataSample
    samples = []
    for i, m in enumerate(mask):
        sample = DataSample()
        sample.set_field(m, 'mask')
        if secondary_mask is not None:
            sample.set_field(secondary_mask[i].numpy(), 'secondary_mask')
        samples.append(sample)
    return samples


def pipeline_batch(mask_cfg, n=2, size=64, algorithm_keys=()):
    """Random images -> mask generator -> PackInputs -> default_collate."""
    import numpy as np
    from mmcv.transforms import Compose
    from mmengine.dataset import default_collate
    from mmpretrain.registry import TRANSFORMS
    np.random.seed(0)
    pipeline = Compose([
        TRANSFORMS.build(mask_cfg),
        TRANSFORMS.build(
            dict(type='PackInputs', algorithm_keys=list(algorithm_keys)))
    ])
    packed = [
        pipeline(
            dict(img=np.random.randint(0, 255, (size, size, 3), np.uint8)))
        for _ in range(n)
    ]
    return default_collate(packed)
