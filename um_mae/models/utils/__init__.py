# Copyright (c) um-mae contributors. All rights reserved.
from .backbone_contract import (STEM_NAMES, BackboneContractMixin,
                                RandomThenCheckpointInit, check_pyramid_modes,
                                layer_depth, parse_arch, parse_indices,
                                resize_checkpoint_pos_embed)
from .pos_embed import sincos_pos_embed_2d
from .uniform_packing import (check_compact_masks, check_mask_grid,
                              check_mask_inputs, check_secondary_superset,
                              check_uniform_mask, replace_secondary_tokens,
                              token_to_patch_mask, uniform_pack,
                              visible_block_order)
from .weight_init import (loads_checkpoint, official_init_,
                          split_checkpoint_inits)

__all__ = [
    'STEM_NAMES', 'BackboneContractMixin', 'RandomThenCheckpointInit',
    'check_compact_masks', 'check_mask_grid', 'check_mask_inputs',
    'check_pyramid_modes', 'check_secondary_superset', 'check_uniform_mask',
    'layer_depth', 'loads_checkpoint', 'official_init_', 'parse_arch',
    'parse_indices', 'replace_secondary_tokens', 'resize_checkpoint_pos_embed',
    'sincos_pos_embed_2d', 'split_checkpoint_inits', 'token_to_patch_mask',
    'uniform_pack', 'visible_block_order'
]
