# Copyright (c) um-mae contributors. All rights reserved.
"""Window geometry shared by the windowed backbones.

``UMSwinTransformer`` (shifted windows, continuous position bias on real
image coordinates) and ``WindowedViT`` (ViTDet's non-overlapping windows)
cut channels-last maps ``(N, H, W, C)`` into windows and back with the same
functions, as detectron2 keeps ``window_partition`` / ``window_unpartition``
in its backbone utils. Windows are numbered in row-major order, tokens in a
window too.

The rest is the geometry of UM-MAE's Swin (Li et al., "Uniform Masking:
Enabling MAE Pre-training for Pyramid-based Vision Transformers with
Locality", 2022): the window and shift of a block, the mask of a shifted
window, and the image-grid coordinates of the tokens of a compact map
(:class:`CompactPositions`) whose pairwise offsets feed the position-bias
MLP.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'SHIFT_MASK_VALUE', 'CompactPositions', 'PairCoords', 'log_spaced',
    'merged_coords', 'pad_to_windows', 'shift_attention_mask', 'window_coords',
    'window_layout', 'window_partition', 'window_unpartition'
]

#: Value added to the attention logits of token pairs that a shifted window
#: joins but that are not neighbours in the image. The official UM-MAE Swin
#: adds -100 (not -inf); keeping it reproduces its outputs.
SHIFT_MASK_VALUE = -100.0

#: ``((window_h, window_w), (shift_h, shift_w))``
WindowLayout = Tuple[Tuple[int, int], Tuple[int, int]]


def window_layout(map_size: Tuple[int, int], window_size: int,
                  shifted: bool) -> WindowLayout:
    """Window and cyclic-shift sizes of one block on a map of ``map_size``.

    A side no longer than ``window_size`` is covered by a single window of
    exactly that side and is never shifted (for square maps this is the
    official rule ``min(resolution) <= window``: one global window, no
    shift). Longer sides use ``window_size`` windows (the map is padded to a
    multiple in dense mode) and shift by ``window_size // 2`` in the odd
    blocks of a stage.

    Args:
        map_size (tuple[int, int]): Height and width of the token map.
        window_size (int): Configured window side.
        shifted (bool): Whether the block is a shifted-window block (odd
            block index inside its stage).

    Returns:
        tuple: ``((window_h, window_w), (shift_h, shift_w))``.
    """
    windows, shifts = [], []
    for side in map_size:
        if side <= window_size:
            windows.append(side)
            shifts.append(0)
        else:
            windows.append(window_size)
            shifts.append(window_size // 2 if shifted else 0)
    return tuple(windows), tuple(shifts)


def pad_to_windows(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """Zero-pad ``(N, H, W, C)`` at the bottom / right to whole windows."""
    H, W = x.shape[1:3]
    pad_b, pad_r = (-H) % window[0], (-W) % window[1]
    if pad_b or pad_r:
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    return x


def window_partition(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """``(N, H, W, C)`` -> ``(N, nW, Wh*Ww, C)``, H and W whole windows."""
    N, H, W, C = x.shape
    wh, ww = window
    x = x.view(N, H // wh, wh, W // ww, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(N, (H // wh) * (W // ww), wh * ww, C)


def window_unpartition(x: Tensor, window: Tuple[int, int], H: int,
                       W: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(N, nW, Wh*Ww, C)`` ->
    ``(N, H, W, C)``."""
    N, _, _, C = x.shape
    wh, ww = window
    x = x.view(N, H // wh, W // ww, wh, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(N, H, W, C)


def shift_attention_mask(padded_size: Tuple[int, int], layout: WindowLayout,
                         device: torch.device, dtype: torch.dtype) -> Tensor:
    """Additive mask ``(nW, Wh*Ww, Wh*Ww)`` of a shifted-window block.

    After the cyclic shift, the last window along a shifted side joins
    tokens from the two ends of the map; pairs from different regions get
    :data:`SHIFT_MASK_VALUE`.
    """
    (wh, ww), (sh, sw) = layout
    label_h = torch.zeros(padded_size[0], device=device)
    label_w = torch.zeros(padded_size[1], device=device)
    if sh:
        label_h[-wh:-sh] = 1
        label_h[-sh:] = 2
    if sw:
        label_w[-ww:-sw] = 1
        label_w[-sw:] = 2
    region = label_h[:, None] * 3 + label_w[None, :]  # (Hp, Wp)
    region = window_partition(region[None, :, :, None], (wh, ww))[0, ..., 0]
    diff = region[:, None, :] - region[:, :, None]  # (nW, WW, WW)
    return torch.zeros_like(
        diff, dtype=dtype).masked_fill(diff != 0, SHIFT_MASK_VALUE)


def window_coords(coords: Tensor, layout: WindowLayout) -> Tensor:
    """``(N, H, W, 2)`` -> ``(N * nW, Wh * Ww, 2)`` coordinates of the
    (cyclically shifted) windows of a block."""
    (wh, ww), (sh, sw) = layout
    if (sh, sw) != (0, 0):
        coords = torch.roll(coords, shifts=(-sh, -sw), dims=(1, 2))
    return window_partition(coords, (wh, ww)).flatten(0, 1)


def merged_coords(coords: Tensor) -> Tensor:
    """A merged token sits at the (halved) position of its top-left source
    token, as in the official model."""
    return coords[:, 0::2, 0::2] / 2


def log_spaced(offset: Tensor) -> Tensor:
    """``sign(d) * log(1 + |d|)``: the input of the position-bias MLP."""
    return torch.sign(offset) * torch.log1p(offset.abs())


class CompactPositions:
    """Image-grid coordinates of the tokens of a compact map, on a lattice.

    In compact pre-training the coordinates start as integer patch indices
    in ``[0, H) x [0, W)`` (the patch grid of the image) and are halved at
    every merge, so after ``s`` merges every offset between two tokens is
    ``(k_h, k_w) * 2**-s`` with ``|k_h| < H`` and ``|k_w| < W``. The
    position-bias MLP is therefore run once on that lattice of
    ``(2H - 1) x (2W - 1)`` points and every token pair reads its point:
    the same inputs as running it per pair, in shapes that do not depend on
    the mask (no host synchronisation, no graph break under
    ``torch.compile``). The lattice index of the window pairs is computed
    once per window layout and shared by the blocks of a stage.

    Args:
        coords (Tensor): ``(N, H', W', 2)`` coordinates of the tokens of the
            current map, in units of the current stage.
        grid (tuple[int, int]): Patch grid ``(H, W)`` of the image.
        step (float): Lattice step ``2**-s``. Defaults to 1.
    """

    def __init__(self,
                 coords: Tensor,
                 grid: Tuple[int, int],
                 step: float = 1.) -> None:
        self.coords = coords
        self.grid = tuple(grid)
        self.step = step
        self._index: Dict[WindowLayout, Tensor] = {}
        self._lattice: Optional[Tensor] = None

    def merged(self) -> 'CompactPositions':
        """Positions after a 2x2 merge (the lattice step halves)."""
        return CompactPositions(
            merged_coords(self.coords), self.grid, self.step / 2)

    def lattice(self) -> Tensor:
        """``(2, 2H - 1, 2W - 1)`` log-spaced lattice offsets."""
        if self._lattice is None:
            H, W = self.grid
            dtype, device = self.coords.dtype, self.coords.device
            dh = torch.arange(1 - H, H, device=device).to(dtype) * self.step
            dw = torch.arange(1 - W, W, device=device).to(dtype) * self.step
            offset = torch.stack(torch.meshgrid(dh, dw, indexing='ij'))
            self._lattice = log_spaced(offset)
        return self._lattice

    def window_coords(self, layout: WindowLayout) -> Tensor:
        """``(N * nW, Wh * Ww, 2)`` coordinates of the (shifted) windows."""
        return window_coords(self.coords, layout)

    def window_index(self, layout: WindowLayout) -> Tensor:
        """``(N * nW, WW, WW)`` int64 lattice point of every window pair."""
        if layout not in self._index:
            coords = self.window_coords(layout)
            offset = coords[:, None, :, :] - coords[:, :, None, :]
            # offset / step are integers, exactly
            k = torch.round(offset / self.step).long()  # (M, q, k, 2)
            H, W = self.grid
            self._index[layout] = (k[..., 0] + H - 1) * (2 * W - 1) + (
                k[..., 1] + W - 1)
        return self._index[layout]

    def bias(self, attn, layout: WindowLayout) -> Tensor:
        """``(N * nW, nH, WW, WW)`` position bias of ``attn``'s MLP
        (``attn.lattice_bias``, e.g. Swin's ``ContinuousWindowMSA``)."""
        return attn.lattice_bias(self.lattice(), self.window_index(layout))


class PairCoords:
    """Coordinates of any values: the position-bias MLP runs per pair.

    Args:
        coords (Tensor): ``(N, H', W', 2)`` token coordinates.
    """

    def __init__(self, coords: Tensor) -> None:
        self.coords = coords

    def merged(self) -> 'PairCoords':
        """Positions after a 2x2 merge."""
        return PairCoords(merged_coords(self.coords))

    def bias(self, attn, layout: WindowLayout) -> Tensor:
        """``(N * nW, nH, WW, WW)`` bias of ``attn.position_bias``."""
        return attn.position_bias(window_coords(self.coords, layout))
