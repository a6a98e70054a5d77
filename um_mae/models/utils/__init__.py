# Copyright (c) um-mae contributors. All rights reserved.
from .pos_embed import sincos_pos_embed_2d
from .uniform_packing import (check_uniform_mask, uniform_pack,
                              visible_block_order)
from .weight_init import loads_checkpoint, official_init_

__all__ = [
    'check_uniform_mask', 'sincos_pos_embed_2d', 'uniform_pack',
    'visible_block_order', 'loads_checkpoint', 'official_init_'
]
