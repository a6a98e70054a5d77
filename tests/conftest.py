# Copyright (c) um-mae contributors. All rights reserved.
import functools
import io
import logging
import math
import os
import os.path as osp
import re
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.logging import MMLogger

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def load_config(rel_path):
    """A shipped config (path relative to the repository), parsed once per
    test session and shared by the tests that read it: do not modify it
    (copy with ``.to_dict()`` / ``copy.deepcopy`` first)."""
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO_ROOT, rel_path))


class _ToolServer:
    """Client of ``tests/tool_server.py`` (one per test session)."""

    def __init__(self):
        import threading
        self._lock = threading.Lock()
        self._proc = None
        self._count = 0

    def run(self, argv, cwd, env, timeout):
        import json
        import tempfile
        import time
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen([
                    sys.executable,
                    osp.join(REPO_ROOT, 'tests', 'tool_server.py')
                ],
                                              stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE,
                                              env=dict(
                                                  os.environ,
                                                  PYTHONWARNINGS='ignore'),
                                              cwd=REPO_ROOT,
                                              text=True)
                assert self._proc.stdout.readline().strip() == 'ready'
                import atexit
                atexit.register(self.close)
            self._count += 1
            out = osp.join(tempfile.gettempdir(),
                           f'um_mae-tool-{os.getpid()}-{self._count}.log')
            self._proc.stdin.write(
                json.dumps(dict(argv=argv, cwd=cwd, env=env, out=out)) + '\n')
            self._proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not osp.exists(out + '.rc'):
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(argv, timeout)
            time.sleep(0.1)
        with open(out + '.rc') as f:
            rc = int(f.read())
        with open(out, errors='replace') as f:
            text = f.read()
        os.remove(out)
        os.remove(out + '.rc')
        return rc, text

    def close(self):
        """End the server (after the runs still going)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()


_TOOL_SERVER = _ToolServer()


def run_tool(*args, env=None, cwd=REPO_ROOT, timeout=1200):
    """Run ``python *args`` with this interpreter (warnings off).

    A script under ``tools/`` whose environment changes at most the thread
    counts runs in a process forked from a warm interpreter that has the
    toolboxes imported already (``tests/tool_server.py``): the script itself
    runs as ``__main__`` with these arguments; anything else gets a fresh
    ``python``.

    Returns:
        tuple[int, str]: The exit code and stdout + stderr.
    """
    from tool_server import FORKABLE_ENV
    script = osp.abspath(osp.join(cwd, str(args[0]))) if args else ''
    if (script.startswith(osp.join(REPO_ROOT, 'tools') + osp.sep)
            and script.endswith('.py') and osp.isfile(script)
            and set(env or {}) <= set(FORKABLE_ENV)
            and not os.environ.get('UM_MAE_TEST_NO_FORK')):
        return _TOOL_SERVER.run([script, *map(str, args[1:])], cwd,
                                dict(env or {}), timeout)
    full_env = dict(os.environ, PYTHONWARNINGS='ignore')
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *args],
                          cwd=cwd,
                          env=full_env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


#: the official-model fixtures shipped with the repository, as byte shards
#: (see tests/data/reference/README.md)
SHIPPED_REFERENCE_DIR = osp.join(REPO_ROOT, 'tests', 'data', 'reference')
#: a folder of whole fixture files that replaces the shipped ones
REFERENCE_OVERRIDE = os.environ.get('UM_MAE_REFERENCE')


def reference_sums() -> dict:
    """``{name: sha256}`` of the shipped fixtures (``SHA256SUMS``)."""
    with open(osp.join(SHIPPED_REFERENCE_DIR, 'SHA256SUMS')) as f:
        return {
            name: digest
            for digest, name in (line.split() for line in f if line.strip())
        }


@functools.lru_cache()
def join_reference_shards(name: str) -> bytes:
    """The bytes of the shipped fixture ``name``, joined from its shards.

    Raises:
        ValueError: a shard is missing or changed (the SHA-256 of the joined
            bytes is not the one in ``SHA256SUMS``).
    """
    import hashlib
    import re
    shards = sorted(
        osp.join(SHIPPED_REFERENCE_DIR, f)
        for f in os.listdir(SHIPPED_REFERENCE_DIR)
        if re.fullmatch(re.escape(name) + r'\.\d\d', f))
    data = b''.join(open(s, 'rb').read() for s in shards)
    expected = reference_sums().get(name)
    digest = hashlib.sha256(data).hexdigest()
    if expected is None or digest != expected:
        raise ValueError(
            f'{name}: the shards {[osp.basename(s) for s in shards]} in '
            f'{SHIPPED_REFERENCE_DIR} join to SHA-256 {digest}, not '
            f'{expected} (SHA256SUMS); restore them with `git checkout '
            f'{osp.relpath(SHIPPED_REFERENCE_DIR, REPO_ROOT)}`')
    return data


#: (name pattern, (low, high)) of the metrics our evaluators report: COCO
#: AP / AR of mmdet's ``CocoMetric`` are fractions; mmseg's ``IoUMetric``
#: and mmpretrain's ``Accuracy`` report percentages
METRIC_RANGES = (
    (r'^coco/', (0., 1.)),
    (r'^(aAcc|mIoU|mAcc|mDice|mFscore|mPrecision|mRecall)$', (0., 100.)),
    (r'^(accuracy|single-label)/', (0., 100.)),
)


def assert_metrics_valid(metrics: dict) -> None:
    """Every reported metric is a finite number in its range.

    A NaN, or COCO's -1 for "nothing to score", fails, and so does a
    metric without a known range (add it to :data:`METRIC_RANGES`).
    """
    assert metrics, 'no metric reported'
    for name, value in metrics.items():
        ranges = [
            r for pattern, r in METRIC_RANGES if re.search(pattern, name)
        ]
        assert ranges, (f'metric {name!r} = {value!r} has no known range; '
                        'add it to METRIC_RANGES in tests/conftest.py')
        low, high = ranges[0]
        assert isinstance(value, (int, float)) and not isinstance(
            value, bool) and math.isfinite(value) and low <= value <= high, (
                f'metric {name!r} = {value!r} is not a finite number in '
                f'[{low}, {high}]')


def load_reference(name):
    """Load one official-model fixture (see tests/data/reference/README.md).

    The fixtures ship with the repository; ``UM_MAE_REFERENCE`` names a
    folder of whole ``NAME.pt`` files to read instead. A fixture missing
    there skips the test (fails it in CI).
    """
    if REFERENCE_OVERRIDE:
        path = osp.join(REFERENCE_OVERRIDE, name)
        if not osp.exists(path):
            msg = (f'reference fixture {path} not found (UM_MAE_REFERENCE='
                   f'{REFERENCE_OVERRIDE}); unset UM_MAE_REFERENCE to use '
                   'the fixtures shipped in tests/data/reference')
            if os.environ.get('CI'):
                pytest.fail(msg)
            pytest.skip(msg)
        return torch.load(path, weights_only=True)
    return torch.load(
        io.BytesIO(join_reference_shards(name)), weights_only=True)


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
    the launcher does (``um_mae.engine.config_bases``); read the toolboxes'
    metafiles once per process (``tests/metafile_cache.py``); import the
    toolboxes once and freeze them (:func:`_freeze_imports`)."""
    import metafile_cache

    from um_mae.engine import find_renamed_packages
    find_renamed_packages()
    metafile_cache.install()
    _share_cores_between_workers()
    _freeze_imports(config)


def _freeze_imports(config):
    """In a process that runs tests, import the toolboxes and leave their
    objects out of later garbage collections (``tests/tool_server.py``'s
    ``freeze_imports``: mmengine collects garbage at every dataset it
    builds)."""
    if not hasattr(config, 'workerinput') and getattr(
            config.option, 'numprocesses', None):
        return  # pytest-xdist's controller: the workers run the tests
    from tool_server import freeze_imports, import_toolboxes
    import_toolboxes()
    freeze_imports()


def _share_cores_between_workers():
    """Under ``pytest -n N`` (pytest-xdist) each worker, and every process
    it starts, uses its share of the cores instead of all of them."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers < 2:
        return
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(name, threads)
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))


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


@pytest.fixture(autouse=True)
def _isolate_dynamo():
    """Undo what a test compiled with ``torch.compile``.

    dynamo keeps its compiled frames and, per code object, the input shapes
    it has seen until ``torch._dynamo.reset()``: after a test that compiled
    a model with batches of 2 and 3 images, the next test that compiles the
    same ``train_step`` in this worker traced it with a symbolic batch size
    (measured: ``test_cpu_mode_writes_the_report`` 64 s after
    ``test_compile.py``, 20 s with the reset).
    """
    if 'torch._dynamo' not in sys.modules:
        yield
        return
    from torch._dynamo.utils import counters
    before = sum(counters['stats'].values())
    yield
    if sum(counters['stats'].values()) != before:
        import torch._dynamo
        torch._dynamo.reset()


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
# files in tests/data/reference/; see its README.md). PVT's sr_ratios are the
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


def simmim_reference_loss(model, inputs, mask):
    """SimMIM's loss written out from the model's own reconstruction.

    The official rule (Xie et al.'s ``SimMIM.forward``): the token mask is
    repeated to pixels, and the L1 error on the masked pixels is divided
    by their number (+ 1e-5) and by the input channels.

    Args:
        model: A SimMIM algorithm (its backbone and neck are run).
        inputs (Tensor): Preprocessed images ``(N, C, H, W)``.
        mask (Tensor): Bool token mask ``(N, h, w)``, True = masked.
    """
    rec = model.neck(model.backbone(inputs, mask)[0])  # (N, C, H, W)
    scale = inputs.shape[-1] // mask.shape[-1]
    pixels = mask.repeat_interleave(scale, 1).repeat_interleave(
        scale, 2)[:, None].to(inputs.dtype)  # (N, 1, H, W)
    error = (rec - inputs).abs() * pixels
    return error.sum() / (pixels.sum() + 1e-5) / inputs.shape[1]
