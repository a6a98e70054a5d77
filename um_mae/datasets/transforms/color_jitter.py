# Copyright (c) um-mae contributors. All rights reserved.
"""Colour jitter whose hue shift works with numpy 2."""
from functools import partial
from typing import Dict

import cv2
import mmcv
import numpy as np
from mmpretrain.datasets.transforms import ColorJitter
from mmpretrain.registry import TRANSFORMS

__all__ = ['UMColorJitter', 'shift_hue']


def shift_hue(img: np.ndarray, hue: float) -> np.ndarray:
    """Rotate the hue of a BGR uint8 image by ``hue`` of the colour circle.

    The hue channel of OpenCV's full-range HSV (0 - 255) is shifted by
    ``round(hue * 255)`` modulo 256, the rotation ``mmcv.adjust_hue`` makes
    with numpy 1 (it casts a negative shift to uint8, which numpy 2
    refuses).

    Args:
        img (np.ndarray): BGR uint8 ``(H, W, 3)``.
        hue (float): Shift in [-0.5, 0.5].

    Returns:
        np.ndarray: BGR uint8 ``(H, W, 3)``.
    """
    if not -0.5 <= hue <= 0.5:
        raise ValueError(f'hue shift {hue} is outside [-0.5, 0.5]')
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    shift = int(round(hue * 255)) % 256
    rotated = (hsv[..., 0].astype(np.int16) + shift) % 256
    hsv[..., 0] = rotated.astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)


@TRANSFORMS.register_module()
class UMColorJitter(ColorJitter):
    """mmpretrain's ``ColorJitter`` with a hue shift that works on numpy 2.

    Brightness, contrast and saturation factors and the hue shift are drawn
    as in torchvision's ``ColorJitter`` (mmpretrain's ``_rand_params``: a
    random order, uniform factors) and applied to the BGR uint8 image with
    mmcv's functions, as mmpretrain does; only the hue step is
    :func:`shift_hue` instead of ``mmcv.adjust_hue``, which raises
    ``OverflowError`` for a negative shift under numpy >= 2 (mmcv 2.1.0).

    Args:
        brightness (float | Sequence[float]): Factor range, as
            ``ColorJitter``. Defaults to 0.
        contrast (float | Sequence[float]): Factor range. Defaults to 0.
        saturation (float | Sequence[float]): Factor range. Defaults to 0.
        hue (float | Sequence[float]): Shift range (``h``: ``[-h, h]``).
            Defaults to 0.
        backend (str): mmcv backend of the brightness / contrast /
            saturation steps. Defaults to ``'pillow'``.
    """

    def transform(self, results: Dict) -> Dict:
        """Jitter ``results['img']`` (BGR uint8)."""
        order, brightness, contrast, saturation, hue = self._rand_params()
        steps = [
            (brightness, partial(mmcv.adjust_brightness,
                                 backend=self.backend)),
            (contrast, partial(mmcv.adjust_contrast, backend=self.backend)),
            (saturation, partial(mmcv.adjust_color, backend=self.backend)),
            (hue, shift_hue),
        ]
        img = results['img']
        for index in order:
            factor, step = steps[index]
            if factor is not None:
                img = step(img, factor)
        results['img'] = img
        return results
