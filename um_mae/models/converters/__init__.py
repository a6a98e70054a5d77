# Copyright (c) um-mae contributors. All rights reserved.
"""Foreign checkpoints: reading, format detection, key mappers, loading.

A leaf package: it imports torch, mmengine and numpy only, nothing else of
um_mae. Importing it registers the ``CheckedPretrained`` initializer.
"""
from .formats import (FORMATS, CheckpointFormat, convert_checkpoint,
                      describe_own_layout, detect_format)
from .keys import Rule, rename_keys, strip_prefix, unwrap
from .official import (ARCH_RULES, BACKBONE_CONVERTERS, NECK_CONVERTERS,
                       convert, convert_official_mae_decoder,
                       convert_official_pvt, convert_official_swin,
                       convert_official_vit_decoder, detect_arch)
from .pretrained import CheckedPretrainedInit, load_pretrained
from .reading import (UNSAFE_PICKLE_ENV, cached_download_path, read_checkpoint,
                      resolve_checkpoint_name, runner_checkpoint_globals)
from .vit import (TIMM_BLOCK_RULES, Conversion, convert_beit,
                  convert_mocov3_vit, convert_official_vit, convert_timm_vit,
                  map_vit_keys, share_block_tables, split_fused_vit_adaptor)

__all__ = [
    'ARCH_RULES', 'BACKBONE_CONVERTERS', 'CheckedPretrainedInit',
    'CheckpointFormat', 'Conversion', 'FORMATS', 'NECK_CONVERTERS', 'Rule',
    'TIMM_BLOCK_RULES', 'UNSAFE_PICKLE_ENV', 'cached_download_path',
    'convert', 'convert_beit',
    'convert_checkpoint', 'convert_mocov3_vit', 'convert_official_mae_decoder',
    'convert_official_pvt', 'convert_official_swin', 'convert_official_vit',
    'convert_official_vit_decoder', 'convert_timm_vit', 'describe_own_layout',
    'detect_arch', 'detect_format', 'load_pretrained', 'map_vit_keys',
    'read_checkpoint', 'rename_keys', 'resolve_checkpoint_name',
    'runner_checkpoint_globals', 'share_block_tables',
    'split_fused_vit_adaptor', 'strip_prefix', 'unwrap'
]
