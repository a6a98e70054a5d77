# Copyright (c) um-mae contributors. All rights reserved.
"""UMColorJitter: mmpretrain's ColorJitter with a numpy-2-safe hue step."""
import cv2
import numpy as np
import pytest
from mmpretrain.datasets.transforms import ColorJitter

from um_mae.datasets.transforms import UMColorJitter, shift_hue


@pytest.fixture
def img():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)


def test_brightness_contrast_saturation_as_mmpretrain(img):
    """Same draws, same mmcv functions: the same image."""
    kwargs = dict(brightness=(0.1, 2.0), contrast=(0.1, 2.0),
                  saturation=(0.1, 2.0))
    for seed in range(3):
        np.random.seed(seed)
        ours = UMColorJitter(**kwargs).transform(dict(img=img.copy()))
        np.random.seed(seed)
        theirs = ColorJitter(**kwargs).transform(dict(img=img.copy()))
        assert np.array_equal(ours['img'], theirs['img'])
        assert not np.array_equal(ours['img'], img)


@pytest.mark.parametrize('hue', [-0.1, -0.5, 0.03, 0.5])
def test_hue_rotates_the_hue_channel(img, hue):
    out = shift_hue(img, hue)
    before = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL).astype(int)
    after = cv2.cvtColor(out, cv2.COLOR_BGR2HSV_FULL).astype(int)
    # away from grey and black, the hue moves by the shift (mod 256) up
    # to the rounding of the colour conversions
    colourful = (before[..., 1] > 100) & (before[..., 2] > 100)
    moved = (after[..., 0] - before[..., 0] - round(hue * 255)) % 256
    moved = np.minimum(moved, 256 - moved)[colourful]
    assert colourful.sum() > 50 and moved.max() <= 3
    np.testing.assert_allclose(after[..., 2], before[..., 2], atol=2)
    with pytest.raises(ValueError, match=r'hue shift 0.7 is outside'):
        shift_hue(img, 0.7)


def test_negative_hue_draws_work(img):
    jitter = UMColorJitter(hue=0.1)
    np.random.seed(0)
    shifts = [jitter._rand_params()[-1] for _ in range(20)]
    assert min(shifts) < 0 < max(shifts)
    np.random.seed(0)
    for _ in range(20):  # mmpretrain's hue step raises for the negatives
        out = jitter.transform(dict(img=img.copy()))['img']
        assert out.shape == img.shape and out.dtype == np.uint8
