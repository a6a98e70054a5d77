# Copyright (c) um-mae contributors. All rights reserved.
import io
import logging
import os
import os.path as osp
import uuid

import pytest
import torch
from mmengine.logging import MMLogger

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
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
