# Copyright (c) um-mae contributors. All rights reserved.
"""Per-stage norm + linear projection of backbone maps, before an FPN.

The detection transfer of Li et al., "Uniform Masking: Enabling MAE
Pre-training for Pyramid-based Vision Transformers with Locality", 2022
(appendix B.3), layer-normalises every stage map of the pre-trained pyramid
backbone and projects it to 768 channels before the FPN.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmpretrain.registry import MODELS
from torch import Tensor

__all__ = ['StageNormProjection']


@MODELS.register_module()
class StageNormProjection(BaseModule):
    """Norm over channels and a linear map to ``out_channels``, per map.

    Our backbones return the raw stage maps (their norms live in the
    pre-training decoder and the classifier), so a detector fed with them
    sees unnormalised residual streams. Put this module before the FPN, as
    the first element of a neck list (mmengine builds a list as
    ``nn.Sequential``)::

        neck=[
            dict(type='mmpretrain.StageNormProjection',
                 in_channels=[128, 320, 512], out_channels=768),
            dict(type='FPN', in_channels=[768, 768, 768], ...),
        ]

    Args:
        in_channels (Sequence[int]): Channels of each input map.
        out_channels (int): Channels of every output map. Defaults to 768.
        norm_cfg (dict): The per-map norm, applied over channels.
            Defaults to ``dict(type='LN', eps=1e-5)``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to a N(0, 0.02) truncated normal for the linear layers
            (zero bias).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int = 768,
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='TruncNormal', layer='Linear', std=.02,
                     bias=0.)) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int) or not in_channels:
            raise ValueError(
                f'in_channels={in_channels!r} must list the channels of '
                'every backbone map, e.g. [128, 320, 512]')
        self.in_channels = list(in_channels)
        self.norms = ModuleList(
            [build_norm_layer(norm_cfg, c)[1] for c in self.in_channels])
        self.projs = ModuleList(
            [nn.Linear(c, out_channels) for c in self.in_channels])

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """NCHW maps -> NCHW maps of ``out_channels``, same sizes."""
        got = [x.shape[1] for x in inputs]
        if got != self.in_channels:
            raise ValueError(
                f'StageNormProjection got maps with {got} channels but '
                f'in_channels={self.in_channels}; set in_channels to the '
                "backbone's out_indices channels")
        return tuple(
            proj(norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
            for x, norm, proj in zip(inputs, self.norms, self.projs))
