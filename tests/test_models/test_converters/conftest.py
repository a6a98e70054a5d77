# Copyright (c) um-mae contributors. All rights reserved.
import io
import logging
import uuid

import pytest
from mmengine.logging import MMLogger


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
