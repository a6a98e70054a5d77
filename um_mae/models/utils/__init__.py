# Copyright (c) um-mae contributors. All rights reserved.
from .uniform_packing import (check_uniform_mask, uniform_pack,
                              visible_block_order)

__all__ = ['check_uniform_mask', 'uniform_pack', 'visible_block_order']
