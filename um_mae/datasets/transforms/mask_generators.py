# Copyright (c) um-mae contributors. All rights reserved.
"""Token sampling strategies for masked image modeling.

Implements the four strategies compared in Li et al., "Uniform Masking:
Enabling MAE Pre-training for Pyramid-based Vision Transformers with
Locality", 2022:

* ``RS`` random sampling (MAE): a random subset of tokens is dropped.
* ``GS`` grid-wise sampling: the same slot of every 2x2 block is kept (the
  slot is drawn once per image).
* ``US`` uniform sampling: one random token of every 2x2 block is kept.
* ``UM`` uniform masking: US, then a fraction of the kept tokens (the
  secondary masking ratio) is replaced by a shared learnable token inside
  the encoder.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

__all__ = ['UniformMaskGenerator']

_ALIASES = {
    'rs': 'random',
    'random': 'random',
    'gs': 'grid',
    'grid': 'grid',
    'us': 'uniform',
    'uniform': 'uniform',
    'um': 'um',
}


@TRANSFORMS.register_module()
class UniformMaskGenerator(BaseTransform):
    """Generate the token mask of one image for MIM pre-training.

    The masks live on the grid of ``token_size`` pixel tokens and use
    ``True`` for "dropped". Randomness comes from numpy's global generator,
    like the other mmpretrain transforms, so ``randomness=dict(seed=...)``
    in a config makes the masks reproducible.

    **Required Keys:** ``img`` (only when ``input_size`` is None).

    **Added Keys:**

    - ``mask`` (np.ndarray): bool ``(h, w)``, True = dropped (primary mask).
    - ``secondary_mask`` (Tensor): bool ``(h, w)``, superset of ``mask``
      that also marks the kept tokens the encoder replaces by its
      ``vis_mask_token``. Only added when ``secondary_mask_ratio > 0``.

    Pack them with ``dict(type='PackInputs',
    algorithm_keys=['secondary_mask'])`` (``mask`` is packed by default).
    ``PackInputs`` turns ``mask`` into a tensor but keeps algorithm keys as
    they are: the secondary mask is made a tensor here, so that the data
    preprocessor can move it to the device also inside a
    ``torch.compile``-d training step (which fails on numpy fields).

    Args:
        strategy (str): ``'RS'``/``'random'``, ``'GS'``/``'grid'``,
            ``'US'``/``'uniform'`` or ``'UM'`` (case-insensitive). ``'UM'``
            is ``'US'`` plus secondary masking. Defaults to ``'UM'``.
        input_size (int | Sequence[int], optional): Image size ``(H, W)``
            in pixels. If None, it is read from ``results['img']`` at call
            time. Defaults to None.
        token_size (int): Side of a token in pixels. Defaults to 16.
        mask_ratio (float): Fraction of tokens dropped. The block-based
            strategies (GS, US, UM) keep one token of every 2x2 block and
            therefore need 0.75. RS drops ``int(mask_ratio * h * w)``
            tokens. Defaults to 0.75.
        secondary_mask_ratio (float, optional): Fraction of the kept tokens
            that is secondary-masked; ``floor(kept * (1 - ratio))`` tokens
            stay visible. None means 0.25 for ``'UM'`` and 0 otherwise.
            Defaults to None.
    """

    def __init__(self,
                 strategy: str = 'UM',
                 input_size: Optional[Union[int, Sequence[int]]] = None,
                 token_size: int = 16,
                 mask_ratio: float = 0.75,
                 secondary_mask_ratio: Optional[float] = None) -> None:
        key = str(strategy).lower()
        if key not in _ALIASES:
            raise ValueError(
                f'unknown sampling strategy {strategy!r}; use one of '
                "'RS' (random), 'GS' (grid), 'US' (uniform) or 'UM'")
        self.strategy = _ALIASES[key]
        if secondary_mask_ratio is None:
            secondary_mask_ratio = 0.25 if self.strategy == 'um' else 0.
        for name, ratio in (('mask_ratio', mask_ratio),
                            ('secondary_mask_ratio', secondary_mask_ratio)):
            if not 0. <= ratio < 1.:
                raise ValueError(f'{name}={ratio} is outside [0, 1); use '
                                 'a fraction such as 0.75 or 0.25')
        if self.strategy != 'random' and mask_ratio != 0.75:
            raise ValueError(
                f'strategy {strategy!r} keeps one token of every 2x2 block, '
                f'so mask_ratio must be 0.75, got {mask_ratio}; use '
                "strategy='RS' for other ratios")
        if self.strategy == 'um' and secondary_mask_ratio == 0:
            raise ValueError("strategy 'UM' needs secondary_mask_ratio > 0 "
                             "(e.g. 0.25); use 'US' for no secondary mask")
        if token_size <= 0:
            raise ValueError(f'token_size must be positive, got {token_size}')
        self.token_size = token_size
        self.mask_ratio = mask_ratio
        self.secondary_mask_ratio = secondary_mask_ratio
        self.input_size = input_size
        if input_size is not None:
            self._grid(input_size)  # validate early

    def _grid(self, size: Union[int, Sequence[int]]) -> Tuple[int, int]:
        """Token grid ``(h, w)`` of an image of ``size`` pixels."""
        H, W = (size, size) if isinstance(size, int) else size[:2]
        t = self.token_size
        need = t if self.strategy == 'random' else 2 * t
        for side in (H, W):
            if side % t == 0 and (side // t) % 2 and need == 2 * t:
                raise ValueError(
                    f'token grid {H // t}x{W // t} has an odd side; the '
                    f'{self.strategy!r} strategy samples 2x2 blocks of '
                    f'tokens, so use an input size that is a multiple of '
                    f'{need} (e.g. {(side // need + 1) * need})')
            if side % need:
                raise ValueError(
                    f'input size {side} is not divisible by {need} (needed '
                    f'by {self.strategy!r} sampling of {t}-px tokens); use '
                    f'{max(side // need, 1) * need}')
        return H // t, W // t

    @cache_randomness
    def _sample(self, h: int,
                w: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Draw the primary and, if enabled, the secondary mask."""
        L = h * w
        if self.strategy == 'random':
            num_mask = int(self.mask_ratio * L)
            mask = np.zeros(L, dtype=bool)
            mask[np.random.permutation(L)[:num_mask]] = True
            mask = mask.reshape(h, w)
        else:
            nb = (h // 2) * (w // 2)
            if self.strategy == 'grid':
                # one slot for the whole image: a regular grid
                slot = np.full(nb, np.random.randint(4))
            else:
                slot = np.random.randint(4, size=nb)
            blocks = np.ones((nb, 4), dtype=bool)
            blocks[np.arange(nb), slot] = False
            # (h/2, w/2, 2, 2) -> (h, w)
            mask = blocks.reshape(h // 2, w // 2, 2,
                                  2).transpose(0, 2, 1, 3).reshape(h, w)
        if self.secondary_mask_ratio == 0:
            return mask, None
        kept = np.flatnonzero(~mask)
        num_vis = int(len(kept) * (1. - self.secondary_mask_ratio))
        secondary = mask.copy().reshape(-1)
        secondary[np.random.permutation(kept)[num_vis:]] = True
        return mask, secondary.reshape(h, w)

    def transform(self, results: dict) -> dict:
        """Add ``mask`` (and ``secondary_mask``) to ``results``."""
        size = self.input_size
        if size is None:
            if 'img' not in results:
                raise ValueError('UniformMaskGenerator needs results["img"] '
                                 'or an explicit input_size')
            size = results['img'].shape[:2]
        h, w = self._grid(size)
        mask, secondary = self._sample(h, w)
        results['mask'] = mask
        if secondary is not None:
            results['secondary_mask'] = torch.from_numpy(secondary)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(strategy={self.strategy!r}, '
                f'input_size={self.input_size}, '
                f'token_size={self.token_size}, '
                f'mask_ratio={self.mask_ratio}, '
                f'secondary_mask_ratio={self.secondary_mask_ratio})')
