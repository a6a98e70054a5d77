# Copyright (c) um-mae contributors. All rights reserved.
"""Weight initialization shared by the backbones and the decoder."""
import math
from typing import Optional, Union

import torch.nn as nn

__all__ = ['CHECKPOINT_INITS', 'loads_checkpoint', 'official_init_']

#: initializer types that load a checkpoint
CHECKPOINT_INITS = ('Pretrained', 'CheckedPretrained')


def loads_checkpoint(init_cfg: Optional[Union[dict, list]]) -> bool:
    """Whether ``init_cfg`` loads a checkpoint (then no random init).

    ``checkpoint=None`` loads nothing (the random arm of a transfer study).

    Args:
        init_cfg (dict | list[dict] | None): A module's ``init_cfg``.
    """
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(
        isinstance(cfg, dict) and cfg.get('type') in CHECKPOINT_INITS
        and cfg.get('checkpoint') is not None for cfg in cfgs)


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
