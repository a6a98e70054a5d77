# Copyright (c) um-mae contributors. All rights reserved.
"""Layer-wise learning-rate decay for fine-tuning UM-MAE backbones.

UM-MAE (Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022) fine-tunes its
pre-trained encoders with BEiT-style layer-wise lr decay: the learning rate
of a parameter at depth ``d`` is ``lr * rate ** (num_layers + 1 - d)``.
"""
from collections import OrderedDict
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

#: Parameters (last name component) that never get weight decay, besides
#: every parameter with fewer than two dimensions (norms, biases).
DEFAULT_NO_DECAY_NAMES = ('pos_embed', 'absolute_pos_embed', 'cls_token',
                          'mask_token', 'vis_mask_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class UMLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper with layer-wise lr decay over the backbone.

    One constructor for classifiers (mmpretrain ``ImageClassifier``),
    detectors (mmdet) and segmentors (mmseg ``EncoderDecoder``): the model's
    ``backbone`` (or the model itself when it has none) is split into depths
    ``0 .. num_layers + 1`` by the backbone's ``get_layer_depth`` (every
    um_mae backbone has it, from one rule:
    :func:`um_mae.models.utils.layer_depth`). All parameters
    outside the backbone (necks, heads, decoders) are on the top depth,
    whose lr is the base lr. Parameters with fewer than two dimensions
    (norms, biases) and position embeddings / tokens get no weight decay,
    as in the official fine-tuning; which ones is independent of the
    depths.

    Parameters are grouped by (depth, decay / no decay); every group has
    ``lr = base_lr * lr_scale``, ``lr_scale = rate ** (num_layers + 1 -
    depth)`` and ``layer_id``. Parameter schedulers scale each group's own
    initial lr, so the ratios persist through warm-up and decay.

    ``paramwise_cfg`` keys:

    - ``layer_decay_rate`` (float): the decay rate, in (0, 1]; 1 gives plain
      AdamW / SGD with the no-decay split. Defaults to 1.
    - ``no_decay_names`` (Sequence[str]): last name components of
      parameters without weight decay, besides every 0/1-D one. Defaults
      to :data:`DEFAULT_NO_DECAY_NAMES`.

    Example (mmseg config; ``mmdet.`` / ``mmpretrain`` configs alike):

    .. code:: python

        optim_wrapper = dict(
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='mmpretrain.UMLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.65))

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config (with
            ``optimizer``).
        paramwise_cfg (dict, optional): See above. Defaults to None.
    """
    _paramwise_keys = ('layer_decay_rate', 'no_decay_names')

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - set(self._paramwise_keys)
        if unknown:
            raise ValueError(
                f'paramwise_cfg keys {sorted(unknown)} are not supported by '
                f'{type(self).__name__}; use only {list(self._paramwise_keys)}'
                " (inherited ones can be dropped with `_delete_=True`)")
        rate = paramwise_cfg.setdefault('layer_decay_rate', 1.0)
        if not 0 < rate <= 1:
            raise ValueError(f'layer_decay_rate {rate} is out of (0, 1]; '
                             'use e.g. 0.65 - 0.85, or 1.0 for no decay')
        names = paramwise_cfg.setdefault('no_decay_names',
                                         DEFAULT_NO_DECAY_NAMES)
        if isinstance(names, str):
            raise TypeError(f'no_decay_names must be a sequence of names, '
                            f'got the string {names!r}; write ({names!r}, )')
        # a non-empty paramwise_cfg makes the base class call add_params
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if self.base_lr is None:
            raise ValueError('optimizer.lr is required for layer-wise lr '
                             'decay; set optim_wrapper.optimizer.lr')

    @staticmethod
    def _depth_fn(module: nn.Module) -> Callable[[str], Tuple[int, int]]:
        """Depth of a (whole-model) parameter name."""
        backbone = getattr(module, 'backbone', None)
        prefix = 'backbone.'
        if not isinstance(backbone, nn.Module):
            backbone, prefix = module, ''
        own = getattr(backbone, 'get_layer_depth', None)
        if own is None:
            raise TypeError(
                f'cannot tell the layer depths of {type(backbone).__name__}: '
                'give it a get_layer_depth(param_name, prefix) method (e.g. '
                'from um_mae.models.utils.BackboneContractMixin)')
        return partial(own, prefix=prefix)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   **kwargs) -> None:
        """Append the layer-wise param groups of ``module`` to ``params``.

        Args:
            params (list[dict]): Param groups, extended in place.
            module (nn.Module): The whole model (classifier, detector,
                segmentor or a bare backbone).
            prefix (str): Unused; the model is traversed at once.
                Defaults to ''.
        """
        rate = self.paramwise_cfg['layer_decay_rate']
        no_decay_names = set(self.paramwise_cfg['no_decay_names'])
        depth_of = self._depth_fn(module)
        groups: 'OrderedDict[Tuple[int, bool], dict]' = OrderedDict()
        names: 'OrderedDict[Tuple[int, bool], List[str]]' = OrderedDict()
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            decay = param.ndim > 1 and \
                name.rsplit('.', 1)[-1] not in no_decay_names
            layer_id, num_depths = depth_of(name)
            key = (layer_id, decay)
            if key not in groups:
                scale = rate**(num_depths - 1 - layer_id)
                groups[key] = dict(
                    params=[],
                    lr=self.base_lr * scale,
                    lr_scale=scale,
                    layer_id=layer_id)
                if not decay:
                    groups[key]['weight_decay'] = 0.
                elif self.base_wd is not None:
                    groups[key]['weight_decay'] = self.base_wd
                names[key] = []
            groups[key]['params'].append(param)
            names[key].append(name)
        params.extend(groups.values())
        self._log_groups(groups, names)

    @staticmethod
    def _log_groups(groups: dict, names: dict) -> None:
        logger = MMLogger.get_current_instance()
        summary = ', '.join(
            f'{layer_id}: x{groups[(layer_id, decay)]["lr_scale"]:.3g}'
            for layer_id, decay in groups if decay)
        logger.info(f'layer-wise lr decay: {len(groups)} param groups; '
                    f'lr scale per depth {{{summary}}}')
        for key, group in groups.items():
            logger.debug(f'depth {key[0]} lr={group["lr"]:.3g} weight_decay='
                         f'{group.get("weight_decay", "default")}: ' +
                         ', '.join(names[key]))


def layer_depths(model: nn.Module,
                 names: Optional[Sequence[str]] = None) -> dict:
    """Depths the constructor assigns to parameters of ``model``.

    Args:
        model (nn.Module): Model (classifier, detector, segmentor or
            backbone).
        names (Sequence[str], optional): Parameter names to look up.
            Defaults to all parameters of ``model``.

    Returns:
        dict: ``{name: (depth, num_depths)}``.
    """
    depth_of = UMLayerDecayOptimWrapperConstructor._depth_fn(model)
    if names is None:
        names = [n for n, _ in model.named_parameters()]
    return {n: depth_of(n) for n in names}
