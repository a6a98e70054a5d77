# Copyright (c) um-mae contributors. All rights reserved.
from .ummae import UMMAE

__all__ = ['UMMAE']
