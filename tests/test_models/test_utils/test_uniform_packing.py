# Copyright (c) um-mae contributors. All rights reserved.
"""The packing conventions and the mask rules of uniform_packing."""
import pytest
import torch

from um_mae.models.utils import (check_mask_grid, check_mask_inputs,
                                 check_secondary_superset, check_uniform_mask,
                                 token_to_patch_mask, uniform_pack,
                                 visible_block_order)


def _uniform_mask(n, h, w, seed=0):
    """One random kept token per 2x2 block, (n, h, w) bool, True = dropped."""
    g = torch.Generator().manual_seed(seed)
    slot = torch.randint(0, 4, (n, h // 2, w // 2), generator=g)
    keep = torch.nn.functional.one_hot(slot, 4).bool()  # (n, h/2, w/2, 4)
    keep = keep.view(n, h // 2, w // 2, 2, 2).permute(0, 1, 3, 2, 4)
    return ~keep.reshape(n, h, w)


def test_pack_unpack_round_trip():
    """Packing then putting each token back at its raster id restores the
    kept tokens of the map and nothing else."""
    n, c, h, w, t = 2, 3, 4, 6, 2  # 4x6 tokens of 2x2 cells
    x = torch.randn(n, c, h * t, w * t)
    mask = _uniform_mask(n, h, w)
    packed = uniform_pack(x, mask)  # (n, c, h*t/2, w*t/2)
    assert packed.shape == (n, c, h * t // 2, w * t // 2)
    # (n, blocks, c, t, t) in block order -> (n, h*w, c, t, t) by raster id
    tokens = packed.view(n, c, h // 2, t, w // 2, t).permute(0, 2, 4, 1, 3, 5)
    tokens = tokens.reshape(n, -1, c, t, t)
    ids = visible_block_order(mask)
    full = torch.zeros(n, h * w, c, t, t)
    full.scatter_(1, ids[:, :, None, None, None].expand_as(tokens), tokens)
    full = full.view(n, h, w, c, t, t).permute(0, 3, 1, 4, 2, 5)
    kept = token_to_patch_mask(~mask, (h * t, w * t))[:, None]
    torch.testing.assert_close(full.reshape_as(x), x * kept)


def test_block_order_and_raster_ids():
    h, w = 6, 4
    mask = _uniform_mask(3, h, w, seed=1)
    ids = visible_block_order(mask)  # (3, h*w/4)
    assert ids.dtype == torch.int64 and ids.shape == (3, h * w // 4)
    rows, cols = ids // w, ids % w
    blocks = torch.arange(h * w // 4)
    # entry a*(w/2) + b lies in block (a, b) and is its kept token
    assert torch.equal(rows // 2, (blocks // (w // 2)).expand(3, -1))
    assert torch.equal(cols // 2, (blocks % (w // 2)).expand(3, -1))
    assert not mask.flatten(1).gather(1, ids).any()
    # packing the raster-id map gives the same ids (one convention)
    raster = torch.arange(h * w).view(1, 1, h, w).expand(3, -1, -1, -1)
    assert torch.equal(uniform_pack(raster, mask).flatten(1), ids)


def test_token_to_patch_mask():
    mask = torch.tensor([[True, False], [False, True]])
    lifted = token_to_patch_mask(mask, (4, 6))
    assert lifted.shape == (4, 6)
    assert lifted[:2, :3].all() and not lifted[:2, 3:].any()
    assert torch.equal(
        token_to_patch_mask(mask[None].expand(2, -1, -1), (4, 6)),
        lifted[None].expand(2, -1, -1))
    with pytest.raises(
            ValueError, match='mask grid 2x2 does not tile the '
            '5x6 grid'):
        token_to_patch_mask(mask, (5, 6))


def test_mask_rules():
    mask = _uniform_mask(2, 4, 4)
    check_uniform_mask(mask, mask | _uniform_mask(2, 4, 4, seed=3))
    with pytest.raises(ValueError, match='every 2x2 block must keep'):
        check_uniform_mask(torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='superset of mask'):
        check_uniform_mask(mask, torch.zeros_like(mask))
    with pytest.raises(ValueError, match='superset of mask'):
        check_secondary_superset(mask.flatten(1), torch.zeros(2, 16).bool())
    with pytest.raises(ValueError, match='differs from mask shape'):
        check_secondary_superset(mask, mask.flatten(1))
    with pytest.raises(
            ValueError,
            match=r'one mask per image of the 3, '
            r'got shape \(2, 4, 4\)'):
        check_mask_grid(mask, 3, (8, 8))
    with pytest.raises(ValueError, match='does not tile the 6x8 grid'):
        check_mask_grid(mask, 2, (6, 8))

    token = torch.zeros(1, 1, 8)
    check_mask_inputs(mask, None, None, 'mask_token')
    check_mask_inputs(mask, mask, token)
    with pytest.raises(ValueError, match='without mask'):
        check_mask_inputs(None, mask, token)
    with pytest.raises(ValueError, match="not mask_mode='mask_token'"):
        check_mask_inputs(mask, mask, token, 'mask_token')
    with pytest.raises(ValueError, match='with_vis_mask_token=True'):
        check_mask_inputs(mask, mask, None)
