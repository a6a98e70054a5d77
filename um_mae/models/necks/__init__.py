# Copyright (c) um-mae contributors. All rights reserved.
__all__ = []
