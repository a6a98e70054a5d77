# Copyright (c) um-mae contributors. All rights reserved.
from .cli import UsageError

__all__ = ['UsageError']
