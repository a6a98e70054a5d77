# Copyright (c) um-mae contributors. All rights reserved.
import pytest
import torch

from um_mae.models.utils.windows import (pad_to_windows, window_partition,
                                         window_unpartition)


@pytest.mark.parametrize('window', [(2, 3), (4, 4)])
def test_partition_order_and_inverse(window):
    x = torch.randn(2, 8, 12, 5)  # (N, H, W, C)
    windows = window_partition(x, window)
    wh, ww = window
    nw = 12 // ww
    assert windows.shape == (2, (8 // wh) * nw, wh * ww, 5)
    # window k is row-major over the grid of windows, its tokens too
    for k in (0, nw - 1, nw, windows.shape[1] - 1):
        r, c = divmod(k, nw)
        expected = x[:, r * wh:(r + 1) * wh, c * ww:(c + 1) * ww]
        assert torch.equal(windows[:, k], expected.reshape(2, -1, 5))
    assert torch.equal(window_unpartition(windows, window, 8, 12), x)


def test_pad_to_windows():
    x = torch.ones(1, 5, 7, 2)
    padded = pad_to_windows(x, (4, 4))
    assert padded.shape == (1, 8, 8, 2)
    assert padded[:, :5, :7].eq(1).all() and padded.sum() == x.sum()
    assert pad_to_windows(x, (5, 7)) is x
