# Copyright (c) um-mae contributors. All rights reserved.
"""Re-packing of uniformly sampled tokens into a compact 2-D map.

Uniform Sampling (Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022) keeps exactly one
token of every 2x2 block of tokens. Gathering the kept token of each block
gives a map of half the height and width in which windowed and pooled
operators still see a regular grid.

Conventions used across um_mae:

* ``mask`` is a bool tensor ``(N, h, w)`` on the token grid, ``True`` means
  the token is dropped (hidden from the encoder).
* block order: row-major order over the ``(h/2, w/2)`` grid of 2x2 blocks,
  i.e. the order of the tokens in the compact map.
* raster id of token ``(r, c)`` is ``r * w + c``.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'check_compact_masks', 'check_mask_grid', 'check_mask_inputs',
    'check_secondary_superset', 'check_uniform_mask',
    'replace_secondary_tokens', 'token_to_patch_mask', 'uniform_pack',
    'visible_block_order'
]

_NOT_SUPERSET = ('secondary_mask must be a superset of mask: it must '
                 'contain every token of mask (True wherever mask is True)')


def _blocks(mask: Tensor) -> Tensor:
    """(N, h, w) -> (N, h/2, w/2, 4): the 4 tokens of each 2x2 block."""
    N, h, w = mask.shape
    return mask.reshape(N, h // 2, 2, w // 2,
                        2).permute(0, 1, 3, 2,
                                   4).reshape(N, h // 2, w // 2, 4)


def _check_same_shape(mask: Tensor, secondary_mask: Tensor) -> None:
    if secondary_mask.shape != mask.shape:
        raise ValueError(
            f'secondary_mask shape {tuple(secondary_mask.shape)} differs '
            f'from mask shape {tuple(mask.shape)}')


def check_uniform_mask(mask: Tensor,
                       secondary_mask: Optional[Tensor] = None) -> None:
    """Raise a ``ValueError`` unless ``mask`` keeps one token per 2x2 block.

    The shapes are always checked. The values (one kept token per block,
    ``secondary_mask`` a superset of ``mask``) are read back to the host,
    which a ``torch.compile``-d step cannot do without a graph break at
    every step; while dynamo traces, that part is left out. Compiled
    training thus relies on the data pipeline: ``UniformMaskGenerator``'s
    uniform strategies keep one token per block by construction (tested in
    ``tests/test_datasets``), and eager steps (tests, tools, ``compile``
    off) check every mask.

    Args:
        mask (Tensor): Bool mask ``(N, h, w)``, True = dropped.
        secondary_mask (Tensor, optional): Bool ``(N, h, w)`` that must
            contain every token of ``mask``. Defaults to None.
    """
    if mask.dim() != 3:
        raise ValueError(f'mask must be (N, h, w), got shape '
                         f'{tuple(mask.shape)}')
    h, w = mask.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f'token grid {h}x{w} has an odd side; uniform '
                         'masking needs even sides (input size a multiple '
                         'of 2 x token size, e.g. 32 px for 16-px tokens)')
    if secondary_mask is not None:
        _check_same_shape(mask, secondary_mask)
    if torch.compiler.is_compiling():
        return
    kept = (~_blocks(mask.bool())).sum(-1)
    uniform = (kept == 1).all()
    superset = torch.ones_like(uniform) if secondary_mask is None else \
        ~(mask.bool() & ~secondary_mask.bool()).any()
    uniform, superset = torch.stack([uniform, superset]).tolist()  # one sync
    if not uniform:
        raise ValueError(
            'mask is not a uniform mask: every 2x2 block must keep exactly '
            f'one token, found blocks keeping {sorted(kept.unique().tolist())}'
            '; use UniformMaskGenerator(strategy="uniform")')
    if not superset:
        raise ValueError(_NOT_SUPERSET)


def check_mask_inputs(mask: Optional[Tensor],
                      secondary_mask: Optional[Tensor],
                      vis_mask_token: Optional[Tensor],
                      mask_mode: str = 'compact') -> None:
    """Raise a ``ValueError`` unless a backbone can use a secondary mask.

    ``secondary_mask`` needs the primary ``mask``, the compact (UM-MAE)
    encoder (a SimMIM ``'mask_token'`` encoder has no use for it) and a
    ``vis_mask_token`` to put in place of the tokens it marks. Its values
    are checked by :func:`check_uniform_mask` or
    :func:`check_secondary_superset`.

    Args:
        mask (Tensor, optional): Primary mask.
        secondary_mask (Tensor, optional): Secondary mask.
        vis_mask_token (Tensor, optional): The backbone's token, None if it
            was built without one.
        mask_mode (str): The backbone's masked mode. Defaults to
            ``'compact'``.
    """
    if secondary_mask is None:
        return
    if mask is None:
        raise ValueError('secondary_mask was given without mask; pass the '
                         'primary mask as well')
    if mask_mode != 'compact':
        raise ValueError(f'secondary_mask is only used by the compact '
                         f'(UM-MAE) encoder, not mask_mode={mask_mode!r}; '
                         "drop it or use mask_mode='compact'")
    if vis_mask_token is None:
        raise ValueError('secondary_mask given but the backbone has no '
                         'vis_mask_token; build it with '
                         'with_vis_mask_token=True')


def check_secondary_superset(mask: Tensor, secondary_mask: Tensor) -> None:
    """Raise a ``ValueError`` unless ``secondary_mask`` contains ``mask``.

    For masks of any pattern (:func:`check_uniform_mask` checks uniform
    ones). Like there, the values are checked in eager mode only.

    Args:
        mask (Tensor): Bool mask, True = dropped.
        secondary_mask (Tensor): Bool mask of the same shape.
    """
    _check_same_shape(mask, secondary_mask)
    if torch.compiler.is_compiling():
        return
    if bool((mask.bool() & ~secondary_mask.bool()).any()):
        raise ValueError(_NOT_SUPERSET)


def _check_tiles(mask: Tensor, grid: Tuple[int, int]) -> None:
    h, w = mask.shape[-2:]
    H, W = grid
    if H % h or W % w:
        raise ValueError(
            f'mask grid {h}x{w} does not tile the {H}x{W} grid; give the '
            'mask on the token grid of the input image (image size / token '
            'size, e.g. H/16 x W/16 for 16-px tokens)')


def check_mask_grid(mask: Tensor, num_images: int, grid: Tuple[int,
                                                               int]) -> None:
    """Raise a ``ValueError`` unless ``mask`` is one token mask per image.

    Args:
        mask (Tensor): ``(N, h, w)``, True = dropped.
        num_images (int): ``N`` of the batch.
        grid (tuple[int, int]): Patch grid ``(H, W)`` the mask must tile.
    """
    if mask.dim() != 3 or mask.shape[0] != num_images:
        raise ValueError(
            f'mask must be (N, h, w), one mask per image of the {num_images}'
            f', got shape {tuple(mask.shape)}; reshape raster masks to '
            '(N, h, w)')
    _check_tiles(mask, grid)


def token_to_patch_mask(mask: Tensor, grid: Tuple[int, int]) -> Tensor:
    """Lift a token mask to a finer grid of patches (or pixels).

    Args:
        mask (Tensor): ``(..., h, w)`` on the token grid.
        grid (tuple[int, int]): ``(H, W)``, multiples of ``(h, w)``.

    Returns:
        Tensor: ``(..., H, W)``; each token's value fills its
        ``H/h x W/w`` cells.
    """
    _check_tiles(mask, grid)
    h, w = mask.shape[-2:]
    H, W = grid
    return mask.repeat_interleave(H // h, -2).repeat_interleave(W // w, -1)


def _kept_slot(mask: Tensor) -> Tensor:
    """Index 0..3 (row-major in the block) of the kept token, (N, h/2, w/2)."""
    return (~_blocks(mask.bool())).to(torch.uint8).argmax(-1)


def uniform_pack(x: Tensor, mask: Tensor) -> Tensor:
    """Gather the kept token of every 2x2 block into a compact map.

    Args:
        x (Tensor): Map ``(N, C, H, W)``; each token covers ``H/h x W/w``
            cells (e.g. 4x4 cells of 4-px patches for 16-px tokens).
        mask (Tensor): Uniform mask ``(N, h, w)``, True = dropped.

    Returns:
        Tensor: ``(N, C, H/2, W/2)``; cell ``(a*t + i, b*t + j)`` is cell
        ``(i, j)`` of the kept token of block ``(a, b)``.
    """
    N, C, H, W = x.shape
    h, w = mask.shape[-2:]
    th, tw = H // h, W // w
    if th * h != H or tw * w != W:
        raise ValueError(f'map {H}x{W} is not a whole number of tokens of '
                         f'the {h}x{w} mask grid')
    # (N, C, h/2, w/2, 4, th, tw): the four tokens of each block
    xb = x.reshape(N, C, h // 2, 2, th, w // 2, 2, tw)
    xb = xb.permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(N, C, h // 2, w // 2, 4,
                                                    th, tw)
    idx = _kept_slot(mask).long()[:, None, :, :, None, None, None]
    idx = idx.expand(N, C, h // 2, w // 2, 1, th, tw)
    out = xb.gather(4, idx).squeeze(4)  # (N, C, h/2, w/2, th, tw)
    return out.permute(0, 1, 2, 4, 3, 5).reshape(N, C, H // 2, W // 2)


def visible_block_order(mask: Tensor) -> Tensor:
    """Raster ids of the kept tokens in block order.

    Args:
        mask (Tensor): Uniform mask ``(N, h, w)``, True = dropped.

    Returns:
        Tensor: int64 ``(N, h*w/4)``; entry ``a*(w/2) + b`` is the raster id
        of the token kept in block ``(a, b)``.
    """
    N, h, w = mask.shape
    slot = _kept_slot(mask).long()
    a = torch.arange(h // 2, device=mask.device).view(1, -1, 1)
    b = torch.arange(w // 2, device=mask.device).view(1, 1, -1)
    rows = 2 * a + slot // 2
    cols = 2 * b + slot % 2
    return (rows * w + cols).reshape(N, -1)


def check_compact_masks(
        mask: Tensor, secondary_mask: Optional[Tensor], num_images: int,
        grid: Tuple[int, int]) -> Tuple[Tensor, Optional[Tensor]]:
    """The masks of a compact (UM-MAE) forward as bool tensors, checked.

    One mask per image, on a grid that tiles the patch grid
    (:func:`check_mask_grid`), uniform, and ``secondary_mask`` a superset
    (:func:`check_uniform_mask`).

    Args:
        mask (Tensor): Uniform mask ``(N, h, w)``, True = dropped.
        secondary_mask (Tensor, optional): ``(N, h, w)`` superset of
            ``mask``.
        num_images (int): ``N`` of the batch.
        grid (tuple[int, int]): Patch grid ``(H, W)`` of the input.

    Returns:
        tuple: ``mask`` and ``secondary_mask`` (or None), bool.
    """
    mask = mask.bool()
    if secondary_mask is not None:
        secondary_mask = secondary_mask.bool()
    check_mask_grid(mask, num_images, grid)
    check_uniform_mask(mask, secondary_mask)
    return mask, secondary_mask


def replace_secondary_tokens(x: Tensor, token: Tensor, mask: Tensor,
                             secondary_mask: Tensor,
                             grid: Tuple[int, int]) -> Tensor:
    """Put ``token`` in place of the kept patches ``secondary_mask`` covers.

    Secondary masking of UM-MAE: tokens in ``secondary_mask`` but not in
    ``mask`` stay in the compact map (with their positions) but their
    content is replaced by a learnable token.

    Args:
        x (Tensor): Compact patch tokens, ``(N, H/2, W/2, C)`` or
            ``(N, H/2 * W/2, C)`` (raster order of the compact map).
        token (Tensor): ``C`` values, e.g. ``(1, 1, C)``.
        mask (Tensor): Bool uniform mask ``(N, h, w)``, True = dropped.
        secondary_mask (Tensor): Bool superset of ``mask``.
        grid (tuple[int, int]): Full patch grid ``(H, W)``.

    Returns:
        Tensor: ``x`` with the replaced tokens, same shape.
    """
    replaced = token_to_patch_mask(secondary_mask & ~mask, grid)  # (N, H, W)
    replaced = uniform_pack(replaced.unsqueeze(1), mask)  # (N, 1, H/2, W/2)
    replaced = replaced.reshape(*x.shape[:-1], 1)
    return torch.where(replaced, token.to(x.dtype).reshape(-1), x)
