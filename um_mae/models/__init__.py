# Copyright (c) um-mae contributors. All rights reserved.
from . import converters  # noqa: F401 (registers CheckedPretrained)
from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
