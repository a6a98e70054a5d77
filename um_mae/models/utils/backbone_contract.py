# Copyright (c) um-mae contributors. All rights reserved.
"""Construction rules shared by the UM-MAE backbones.

``UMPVT``, ``UMSwinTransformer``, ``UMViT`` and ``WindowedViT`` read their
``arch``, ``out_indices``, checkpoint position tables and layer-wise lr
decay depths by these rules, and initialise in one order
(:class:`RandomThenCheckpointInit`, also used by ``MAEPyramidDecoder``), so
each rule has one behaviour and one error text. The mask rules live next to
the packing conventions in :mod:`um_mae.models.utils.uniform_packing`.
"""
import math
import re
from typing import Dict, Mapping, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from mmengine.model.weight_init import initialize
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from .weight_init import split_checkpoint_inits

__all__ = [
    'STEM_NAMES', 'BackboneContractMixin', 'RandomThenCheckpointInit',
    'check_pyramid_modes', 'layer_depth', 'parse_arch', 'parse_indices',
    'resize_checkpoint_pos_embed'
]

#: top-level parameters that belong to the input embedding (depth 0)
STEM_NAMES = ('patch_embed', 'pos_embed', 'cls_token', 'mask_token',
              'vis_mask_token')

# block j of stage s of a pyramid (a merging at the stage start belongs to
# its first block), or block i of a plain ViT
_PYRAMID_BLOCK = re.compile(r'^stages\.(\d+)\.(?:blocks\.(\d+)\.)?')
_PLAIN_BLOCK = re.compile(r'^layers\.(\d+)\.')


def parse_arch(arch: Union[str, dict], arch_zoo: Mapping[str, dict],
               keys: Sequence[str]) -> dict:
    """Settings of a named or custom architecture.

    Args:
        arch (str | dict): A key of ``arch_zoo`` (any case), or a dict with
            exactly ``keys``; its list values hold one entry per stage.
        arch_zoo (Mapping[str, dict]): The named architectures.
        keys (Sequence[str]): The keys of a custom arch.

    Returns:
        dict: A copy of the settings (lists copied).
    """
    if isinstance(arch, str):
        if arch.lower() not in arch_zoo:
            raise ValueError(f'arch {arch!r} is not one of {sorted(arch_zoo)}'
                             f'; pass one of them or a dict with the keys '
                             f'{sorted(keys)}')
        arch = arch_zoo[arch.lower()]
    elif not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or dict, got {type(arch)}')
    elif set(arch) != set(keys):
        raise ValueError(f'custom arch needs exactly the keys {sorted(keys)}'
                         f', got {sorted(arch)}')
    lengths = {
        k: len(v)
        for k, v in arch.items() if isinstance(v, (list, tuple))
    }
    if len(set(lengths.values())) > 1:
        raise ValueError('every list of a custom arch needs one entry per '
                         f'stage, got lengths {lengths}')
    return {
        k: list(v) if isinstance(v, (list, tuple)) else v
        for k, v in arch.items()
    }


def parse_indices(indices: Union[int, Sequence[int]],
                  num: int,
                  name: str = 'out_indices',
                  unit: str = 'stages') -> Tuple[int, ...]:
    """Stage or block indices in ``0 .. num-1``, in the given order.

    Args:
        indices (int | Sequence[int]): One index or several; negative ones
            count from the end (-1 is the last).
        num (int): Number of stages (blocks).
        name (str): Argument name for the error. Defaults to
            ``'out_indices'``.
        unit (str): What is indexed, for the error. Defaults to
            ``'stages'``.

    Returns:
        tuple[int, ...]: The non-negative indices.
    """
    given = (indices, ) if isinstance(indices, int) else tuple(indices)
    out = tuple(num + i if i < 0 else i for i in given)
    if not out or not all(0 <= i < num for i in out) or \
            len(set(out)) != len(out):
        raise ValueError(f'{name}={given} must pick distinct {unit} from '
                         f'0..{num - 1} (or -{num}..-1)')
    return out


def check_pyramid_modes(out_type: str, out_indices: Tuple[int, ...],
                        num_stages: int, mask_mode: str) -> None:
    """Raise a ``ValueError`` unless a pyramid backbone supports the modes.

    Args:
        out_type (str): ``'featmap'`` (NCHW stage maps) or
            ``'avg_featmap'`` (the pooled last stage only).
        out_indices (tuple[int, ...]): Parsed stage indices.
        num_stages (int): Number of stages.
        mask_mode (str): ``'compact'`` (UM-MAE) or ``'mask_token'``
            (SimMIM).
    """
    if out_type not in ('featmap', 'avg_featmap'):
        raise ValueError(f'out_type {out_type!r} is not supported; use '
                         "'featmap' or 'avg_featmap'")
    if out_type == 'avg_featmap' and out_indices != (num_stages - 1, ):
        raise ValueError(
            "out_type='avg_featmap' pools the last stage only, got "
            f"out_indices={out_indices}; use out_indices=-1 or "
            "out_type='featmap'")
    if mask_mode not in ('compact', 'mask_token'):
        raise ValueError(f'mask_mode {mask_mode!r} is not supported; use '
                         "'compact' (UM-MAE) or 'mask_token' (SimMIM)")


def resize_checkpoint_pos_embed(state_dict: Dict[str, Tensor], name: str,
                                pos_embed: Tensor, grid: Tuple[int, int],
                                num_extra_tokens: int, mode: str) -> None:
    """Bring a checkpoint's square position table to this model's grid.

    A ``load_state_dict`` pre-hook body: ``state_dict[name]``, if present
    and of another shape, is resized in place (``resize_pos_embed``). A
    table without the class-token slot the model has gets an unused zero
    slot.

    Args:
        state_dict (dict[str, Tensor]): The state dict being loaded.
        name (str): Key of the table in ``state_dict``.
        pos_embed (Tensor): The model's table ``(1, extra + h*w, C)``.
        grid (tuple[int, int]): The model's token grid ``(h, w)``.
        num_extra_tokens (int): Class-token slots of the model's table
            (0 or 1).
        mode (str): Interpolation mode, e.g. ``'bicubic'``.
    """
    if name not in state_dict or state_dict[name].shape == pos_embed.shape:
        return
    ckpt = state_dict[name]
    extra = ckpt.shape[1] - math.isqrt(ckpt.shape[1])**2 \
        if ckpt.dim() == 3 else -1
    if extra not in (0, num_extra_tokens) or ckpt.shape[0] != 1 or \
            ckpt.shape[-1] != pos_embed.shape[-1]:
        slot = '1 + ' if num_extra_tokens else ''
        raise ValueError(
            f'cannot resize checkpoint {name} {tuple(ckpt.shape)} to '
            f'{tuple(pos_embed.shape)}: expected (1, {slot}s*s, '
            f'{pos_embed.shape[-1]}) for a square grid of side s')
    side = math.isqrt(ckpt.shape[1] - extra)
    if extra < num_extra_tokens:  # no class-token slot: add an unused one
        ckpt = torch.cat([ckpt.new_zeros(1, 1, ckpt.shape[-1]), ckpt], 1)
    MMLogger.get_current_instance().info(
        f'Resize {name} from a {side}x{side} grid to {tuple(grid)} '
        f'({mode}).')
    state_dict[name] = resize_pos_embed(ckpt, (side, side), tuple(grid), mode,
                                        num_extra_tokens)


def layer_depth(param_name: str, prefix: str,
                stage_depths: Sequence[int]) -> Tuple[int, int]:
    """Layer depth of a parameter, for layer-wise lr decay (UM-MAE rule).

    The input embedding (:data:`STEM_NAMES`) is depth 0; block ``k``,
    counted over all stages (``stages.<s>.blocks.<j>`` of a pyramid, whose
    stage-start merging belongs to the first block, or ``layers.<i>`` of a
    plain ViT), is depth ``k + 1``; everything else (final norms, and
    necks / heads outside ``prefix``) is the top depth ``sum + 1``.

    Args:
        param_name (str): Parameter name.
        prefix (str): Prefix of the backbone in ``param_name``.
        stage_depths (Sequence[int]): Blocks per stage (a plain ViT: one
            stage of all its layers).

    Returns:
        tuple[int, int]: The depth and the number of depths
        (``sum(stage_depths) + 2``).
    """
    num_depths = sum(stage_depths) + 2
    if not param_name.startswith(prefix):
        return num_depths - 1, num_depths
    name = param_name[len(prefix):]
    if name.split('.', 1)[0] in STEM_NAMES:
        return 0, num_depths
    match = _PYRAMID_BLOCK.match(name)
    if match:
        stage = int(match.group(1))
        block = int(match.group(2) or 0)
        return sum(stage_depths[:stage]) + block + 1, num_depths
    match = _PLAIN_BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1, num_depths
    return num_depths - 1, num_depths


class RandomThenCheckpointInit:
    """``init_weights``: the documented random init, then the checkpoint.

    The one initialisation order of the backbones and the pyramid decoder:

    1. :meth:`random_init` gives every parameter its documented random
       initialisation (the children's own ``init_weights`` and the
       non-checkpoint initializers of ``init_cfg`` first, then the module's
       rule). It runs whether or not a checkpoint follows, and draws the
       same random numbers either way.
    2. The checkpoint initializers of ``init_cfg`` (``CheckedPretrained``,
       mmengine's ``Pretrained``) load over it.

    So a tensor a checkpoint leaves out (``pretrained_new_keys``, or any
    with ``allow_partial=True``) has the documented initialisation, never a
    construction value, and nothing loaded is re-drawn. Parameters whose
    documented initialisation *is* PyTorch's construction default are
    listed in ``construction_init_keys`` (regular expressions matched at
    the start of a key).

    Put it before ``BaseModule`` (or a subclass) among the bases.
    """
    construction_init_keys: Tuple[str, ...] = ()

    def init_weights(self) -> None:
        """Random initialisation, then the checkpoint of ``init_cfg``."""
        if self.is_init:
            return super().init_weights()  # mmengine warns and skips
        init_cfg = self.init_cfg
        checkpoints, others = split_checkpoint_inits(init_cfg)
        self.init_cfg = others or None
        try:
            self.random_init()
        finally:
            self.init_cfg = init_cfg
        if checkpoints:
            initialize(self, checkpoints)
        self._is_init = True

    def random_init(self) -> None:
        """The documented random initialisation of every parameter.

        This base runs the children's ``init_weights`` and the
        non-checkpoint initializers of ``init_cfg`` (the ``init_weights``
        of the next base class); a module extends it with its own rule.
        """
        super().init_weights()


class BackboneContractMixin(RandomThenCheckpointInit):
    """The init order, ``get_layer_depth`` and a ``train`` returning self.

    Put it first among the bases of a backbone that sets
    ``self.stage_depths`` (blocks per stage).
    """
    stage_depths: Sequence[int]

    def get_layer_depth(self,
                        param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Layer depth of a parameter; see :func:`layer_depth`.

        Args:
            param_name (str): Parameter name.
            prefix (str): Prefix of the backbone in ``param_name``.
                Defaults to ''.

        Returns:
            tuple[int, int]: The depth and the number of depths.
        """
        return layer_depth(param_name, prefix, self.stage_depths)

    def train(self, mode: bool = True):
        """Set the training mode; returns ``self`` like ``nn.Module``."""
        super().train(mode)
        return self
