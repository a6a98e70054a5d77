# Copyright (c) um-mae contributors. All rights reserved.
"""Feature pyramids from the stride-16 maps of a plain ViT.

Two published ways to put a plain ViT (``WindowedViT``) under an FPN:

* Li et al., "Benchmarking Detection Transfer Learning with Vision
  Transformers", 2021: four resolution modules, up x4 / up x2 / identity /
  down x2, on the outputs of blocks d/4, 2d/4, 3d/4 and d
  (:class:`ViTMultiScaleAdaptor`);
* Li, Mao, Girshick, He, "Exploring Plain Vision Transformer Backbones for
  Object Detection" (ViTDet), 2022: the same kinds of modules, all on the
  output of the last block, the "simple feature pyramid"
  (:class:`ViTSimplePyramid`).

Both are mmseg's ``Feature2Pyramid`` (its modules and state-dict keys) with
another ``forward``; see :class:`ViTMultiScaleAdaptor` for why it is not
used as it is.
"""
from typing import Sequence, Tuple

from mmpretrain.registry import MODELS
from mmseg.models.necks import Feature2Pyramid
from torch import Tensor

__all__ = ['ViTMultiScaleAdaptor', 'ViTSimplePyramid']

# rescale factor -> the Feature2Pyramid module that applies it
_MODULES = {
    4: 'upsample_4x',
    2: 'upsample_2x',
    1: 'identity',
    0.5: 'downsample_2x',
    0.25: 'downsample_4x'
}


@MODELS.register_module()
class ViTMultiScaleAdaptor(Feature2Pyramid):
    """Li et al.'s resolution modules: one stride-16 map per pyramid level.

    Input ``i`` is rescaled by ``rescales[i]`` with mmseg's
    ``Feature2Pyramid`` modules: x4 = 2x2 stride-2 transposed conv, norm,
    GELU, 2x2 stride-2 transposed conv; x2 = one such transposed conv; x1 =
    identity; x0.5 / x0.25 = 2x2 / 4x4 max pooling. With
    ``WindowedViT``'s default ``out_indices`` (blocks d/4 ... d) and
    ``rescales=(4, 2, 1, 0.5)`` the outputs are the stride 4 / 8 / 16 / 32
    maps of Li et al. (all with ``embed_dim`` channels) for an FPN.

    ``Feature2Pyramid`` itself does not fit, for two reasons:

    * its ``forward`` picks the modules by position, so only ``[4, 2, 1,
      0.5]`` and ``[2, 1, 0.5, 0.25]`` run (``[2, 1, 0.5]``, the stride
      8 / 16 / 32 maps of the GFL recipe, fails with an ``AttributeError``);
      here each input gets the module of its own factor;
    * it pools in floor mode, so on an odd token grid the stride-32 map
      loses the last row / column; here pooling is in ceil mode, as the
      adaptor was when it was fused into the backbone (on even grids the
      two agree).

    The modules and their state-dict keys (``upsample_4x.*``,
    ``upsample_2x.*``) are ``Feature2Pyramid``'s, so its checkpoints (e.g.
    mmseg's MAE / BEiT UperNet models) load.

    Args:
        embed_dim (int): Channels of the input maps and of every output.
        rescales (Sequence[float]): Factor of each output relative to its
            input, one per input map, each of 4, 2, 1, 0.5 and 0.25 at most
            once. Defaults to ``(4, 2, 1, 0.5)``.
        norm_cfg (dict): Norm between the two transposed convs of the x4
            module. Defaults to ``dict(type='GN', num_groups=32)`` (Li et
            al.'s).
    """

    def __init__(
        self,
        embed_dim: int,
        rescales: Sequence[float] = (4, 2, 1, 0.5),
        norm_cfg: dict = dict(type='GN', num_groups=32)
    ) -> None:
        if isinstance(rescales, (int, float)) or not rescales:
            raise TypeError(f'rescales must list one factor per input map, '
                            f'got {rescales!r}, e.g. (4, 2, 1, 0.5)')
        bad = [k for k in rescales if k not in _MODULES]
        if bad or len(set(rescales)) != len(rescales):
            raise ValueError(
                f'rescales {tuple(rescales)} must take each of '
                f'{tuple(_MODULES)} at most once, e.g. (4, 2, 1, 0.5) for '
                'strides 4 / 8 / 16 / 32')
        super().__init__(embed_dim, list(rescales), norm_cfg)
        for name in ('downsample_2x', 'downsample_4x'):
            if hasattr(self, name):
                getattr(self, name).ceil_mode = True
        self.embed_dim = embed_dim

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Rescale each ``(N, embed_dim, h, w)`` map by its factor.

        Args:
            inputs (Sequence[Tensor]): One map per entry of ``rescales``.

        Returns:
            tuple[Tensor]: ``(N, embed_dim, h * k, w * k)`` for each factor
            ``k`` (``ceil(h * k)`` when pooling).
        """
        if len(inputs) != len(self.rescales):
            raise ValueError(
                f'{type(self).__name__} got {len(inputs)} maps for the '
                f'{len(self.rescales)} rescales {tuple(self.rescales)}; give '
                f'the backbone {len(self.rescales)} out_indices')
        return tuple(
            getattr(self, _MODULES[k])(x)
            for k, x in zip(self.rescales, inputs))


@MODELS.register_module()
class ViTSimplePyramid(ViTMultiScaleAdaptor):
    """ViTDet's simple feature pyramid: every level from the last map.

    The backbone's last block output (``WindowedViT(out_indices=(-1, ))``)
    goes through every module of :class:`ViTMultiScaleAdaptor`: with
    ``rescales=(4, 2, 1, 0.5)`` transposed convs up to strides 4 and 8,
    identity at 16 and max pooling to 32. An mmdet ``FPN`` with
    ``num_outs=5`` after it adds the further pooled stride-64 level the RPN
    uses (1x1 max pooling with stride 2 of the top output, ViTDet's
    ``LastLevelMaxPool``).

    Differences to detectron2's ``SimpleFeaturePyramid``: ViTDet halves the
    channels at each up-sampling step (768 -> 384 -> 192) and ends each
    level with its own 1x1 and 3x3 conv + LayerNorm; here every level keeps
    ``embed_dim`` channels and mmdet's FPN follows, as in the recipe we
    implement (simple pyramid -> FPN -> Faster R-CNN). ``Feature2Pyramid``
    takes one input per level, not one map for all.

    Args:
        embed_dim (int): Channels of the input map and of every output.
        rescales (Sequence[float]): Factor of each level; see
            :class:`ViTMultiScaleAdaptor`. Defaults to ``(4, 2, 1, 0.5)``.
        norm_cfg (dict): Norm between the two transposed convs of the x4
            module. Defaults to a LayerNorm over channels,
            ``dict(type='mmpretrain.LN2d', eps=1e-6)`` (ViTDet's).
    """

    def __init__(
        self,
        embed_dim: int,
        rescales: Sequence[float] = (4, 2, 1, 0.5),
        norm_cfg: dict = dict(type='mmpretrain.LN2d', eps=1e-6)
    ) -> None:
        super().__init__(embed_dim, rescales, norm_cfg)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Build every level from the one ``(N, embed_dim, h, w)`` map.

        Args:
            inputs (Sequence[Tensor]): The backbone output: one map.

        Returns:
            tuple[Tensor]: One map per entry of ``rescales``.
        """
        if len(inputs) != 1:
            raise ValueError(
                f'{type(self).__name__} builds the pyramid from one map but '
                f'got {len(inputs)}; set the backbone out_indices=(-1, )')
        return super().forward(tuple(inputs) * len(self.rescales))
