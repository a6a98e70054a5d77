# Copyright (c) um-mae contributors. All rights reserved.
"""Weight initialization shared by the backbones and the decoder."""
import math
from typing import List, Optional, Tuple, Union

import torch.nn as nn

__all__ = [
    'CHECKPOINT_INITS', 'loads_checkpoint', 'official_init_',
    'split_checkpoint_inits'
]

#: initializer types that load a checkpoint
CHECKPOINT_INITS = ('Pretrained', 'CheckedPretrained')


def split_checkpoint_inits(
        init_cfg: Optional[Union[dict, list]]) -> Tuple[List[dict], list]:
    """Split ``init_cfg`` into checkpoint initializers and the others.

    Args:
        init_cfg (dict | list[dict] | None): A module's ``init_cfg``.

    Returns:
        tuple[list[dict], list]: The configs of :data:`CHECKPOINT_INITS`
        types, and every other config, in their order.
    """
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    cfgs = [cfg for cfg in cfgs if cfg is not None]
    loads = [
        cfg for cfg in cfgs
        if isinstance(cfg, dict) and cfg.get('type') in CHECKPOINT_INITS
    ]
    return loads, [cfg for cfg in cfgs if not any(cfg is c for c in loads)]


def loads_checkpoint(init_cfg: Optional[Union[dict, list]]) -> bool:
    """Whether ``init_cfg`` names a checkpoint to load.

    ``checkpoint=None`` loads nothing (the random arm of a transfer study).

    Args:
        init_cfg (dict | list[dict] | None): A module's ``init_cfg``.
    """
    return any(
        cfg.get('checkpoint') is not None
        for cfg in split_checkpoint_inits(init_cfg)[0])


def official_init_(module: nn.Module) -> None:
    """The initialization of the official UM-MAE models.

    Xavier-uniform linear layers with zero biases, unit LayerNorms, and
    ``N(0, 2 / fan_out)`` convolutions (as in the official PVT / Swin).

    Args:
        module (nn.Module): Initialized in place, with all its submodules.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * \
                m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
