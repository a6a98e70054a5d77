# Copyright (c) um-mae contributors. All rights reserved.
from .transforms import *  # noqa: F401,F403
