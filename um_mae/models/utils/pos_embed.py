# Copyright (c) um-mae contributors. All rights reserved.
"""Fixed 2-D sine-cosine position embeddings in the MAE layout."""
from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ['sincos_pos_embed_2d']


def sincos_pos_embed_2d(grid_size: Union[int, Sequence[int]],
                        embed_dims: int,
                        temperature: float = 10000.) -> Tensor:
    """Build the fixed 2-D sin-cos table used by MAE and UM-MAE.

    The layout follows the MAE release (and so the official UM-MAE
    checkpoints): the first half of the channels encodes the column, the
    second half the row, each as ``[sin, cos]``. The table is computed in
    float64 and returned as float32, like the released tables. Note that
    mmpretrain's ``build_2d_sincos_position_embedding`` orders row and
    column the other way round, so its tables differ from these.

    Args:
        grid_size (int | Sequence[int]): Grid ``(h, w)`` (or one side).
        embed_dims (int): Channels, a multiple of 4.
        temperature (float): Frequency base. Defaults to 10000.

    Returns:
        Tensor: float32 ``(1, h * w, embed_dims)`` in raster order.
    """
    if embed_dims % 4:
        raise ValueError(f'embed_dims={embed_dims} is not a multiple of 4, '
                         'which the 2-D sin-cos embedding needs')
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) \
        else tuple(grid_size)
    quarter = embed_dims // 4
    omega = 1. / temperature**(np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(
        np.arange(h, dtype=np.float64),
        np.arange(w, dtype=np.float64),
        indexing='ij')
    out_c = np.outer(cols.reshape(-1), omega)  # (h*w, D/4)
    out_r = np.outer(rows.reshape(-1), omega)
    table = np.concatenate(
        [np.sin(out_c),
         np.cos(out_c),
         np.sin(out_r),
         np.cos(out_r)], axis=1)
    return torch.from_numpy(table).float().unsqueeze(0)
