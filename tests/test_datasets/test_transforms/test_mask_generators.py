# Copyright (c) um-mae contributors. All rights reserved.
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmpretrain.registry import TRANSFORMS

from um_mae.datasets.transforms import UniformMaskGenerator


def _blocks(mask):
    """(h, w) -> (h/2 * w/2, 4) kept-flags of every 2x2 block."""
    h, w = mask.shape
    return mask.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1,
                                                        3).reshape(-1, 4)


def _draw(strategy, size=256, **kwargs):
    gen = UniformMaskGenerator(strategy=strategy, **kwargs)
    return gen(dict(img=np.zeros((size, size, 3), np.uint8)))


@pytest.mark.parametrize('strategy', ['RS', 'GS', 'US', 'UM'])
def test_keeps_a_quarter_of_the_tokens(strategy):
    np.random.seed(0)
    results = _draw(strategy)
    mask = results['mask']
    assert mask.dtype == bool and mask.shape == (16, 16)
    assert (~mask).sum() == 64
    assert ('secondary_mask' in results) == (strategy == 'UM')


@pytest.mark.parametrize('strategy', ['US', 'UM'])
def test_uniform_keeps_one_token_per_block_at_random_slots(strategy):
    np.random.seed(1)
    kept = ~_blocks(_draw(strategy)['mask'])
    assert (kept.sum(1) == 1).all()
    # the kept slot varies over the blocks
    assert len(np.unique(kept.argmax(1))) > 1


def test_grid_keeps_the_same_slot_in_every_block():
    np.random.seed(2)
    kept = ~_blocks(_draw('GS')['mask'])
    assert (kept.sum(1) == 1).all()
    assert len(np.unique(kept.argmax(1))) == 1


def test_random_sampling_is_not_block_uniform():
    np.random.seed(3)
    kept = ~_blocks(_draw('RS')['mask'])
    assert (kept.sum(1) != 1).any()


@pytest.mark.parametrize('ratio, visible', [(0.15, 54), (0.25, 48),
                                            (0.35, 41)])
def test_secondary_mask_is_superset_with_floor_count(ratio, visible):
    np.random.seed(4)
    results = _draw('UM', secondary_mask_ratio=ratio)
    mask, secondary = results['mask'], results['secondary_mask']
    # a tensor, which PackInputs keeps (and torch.compile can move)
    assert isinstance(secondary, torch.Tensor)
    assert secondary.dtype == torch.bool and secondary.shape == mask.shape
    secondary = secondary.numpy()
    assert not (mask & ~secondary).any()
    # floor(64 * (1 - ratio)) kept tokens stay visible
    assert (~secondary).sum() == visible


def test_secondary_count_floors_like_the_reference():
    # 128 px -> 8x8 tokens, 16 kept; floor(16 * 0.75) = 12
    np.random.seed(5)
    results = _draw('UM', size=128)
    assert (~results['secondary_mask']).sum().item() == 12


def test_samples_differ_and_seed_reproduces():
    gen = UniformMaskGenerator('UM', input_size=256)
    np.random.seed(6)
    first = [gen({}) for _ in range(2)]
    np.random.seed(6)
    again = gen({})
    assert not np.array_equal(first[0]['mask'], first[1]['mask'])
    np.testing.assert_array_equal(first[0]['mask'], again['mask'])
    np.testing.assert_array_equal(first[0]['secondary_mask'],
                                  again['secondary_mask'])


def test_grid_from_image_size_and_non_square():
    np.random.seed(7)
    gen = UniformMaskGenerator('US')
    results = gen(dict(img=np.zeros((96, 160, 3), np.uint8)))
    assert results['mask'].shape == (6, 10)
    assert (~results['mask']).sum() == 15


def test_builds_from_registry_in_a_pipeline():
    pipeline = Compose([
        TRANSFORMS.build(t) for t in [
            dict(type='UniformMaskGenerator', strategy='UM', input_size=64),
            dict(type='PackInputs', algorithm_keys=['secondary_mask'])
        ]
    ])
    assert TRANSFORMS.get('UniformMaskGenerator') is UniformMaskGenerator
    out = pipeline(dict(img=np.zeros((64, 64, 3), np.uint8)))
    sample = out['data_samples']
    assert tuple(sample.mask.shape) == (4, 4)
    assert isinstance(sample.get('secondary_mask'), torch.Tensor)
    assert sample.get('secondary_mask').shape == (4, 4)


@pytest.mark.parametrize('kwargs, match', [
    (dict(strategy='US', input_size=240), 'token grid 15x15 has an odd '
     'side'),
    (dict(strategy='UM', input_size=250), 'input size 250 is not '
     'divisible by 32'),
    (dict(strategy='RS', input_size=250), 'input size 250 is not '
     'divisible by 16'),
    (dict(strategy='US', mask_ratio=0.5), "mask_ratio must be 0.75.*"
     "strategy='RS'"),
    (dict(strategy='RS', mask_ratio=1.0), r'mask_ratio=1.0 is outside'),
    (dict(strategy='UM', secondary_mask_ratio=-0.1),
     r'secondary_mask_ratio=-0.1 is outside \[0, 1\)'),
    (dict(strategy='UM', secondary_mask_ratio=0.), "use 'US'"),
    (dict(strategy='block'), "unknown sampling strategy 'block'"),
])
def test_errors_name_value_and_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniformMaskGenerator(**kwargs)


def test_odd_grid_at_call_time():
    gen = UniformMaskGenerator('UM')
    with pytest.raises(ValueError, match='odd side.*multiple of 32'):
        gen(dict(img=np.zeros((208, 208, 3), np.uint8)))


@pytest.mark.parametrize('name', ['mae_pvt.pt', 'mae_swin.pt'])
def test_um_masks_follow_the_official_rule(reference, monkeypatch, name):
    """Same noise, same mask, against the official fixtures.

    The official secondary rule (shared/reference/README.md): score =
    primary mask (0/1) + noise; the floor(visible x 0.75) visible tokens
    with the lowest scores stay visible. Written out here, it turns the
    fixture's ``secondary_noise`` into its ``secondary_mask``. Our
    generator, driven by the same draws (each block's visible slot read
    from the fixture's ``mask``, the visible tokens ordered by that noise),
    returns both fixture masks. Planted bugs caught: the blocks laid out
    transposed (``transpose(0, 2, 1, 3)`` dropped); the secondary-masked
    tokens taken from the front of the order instead of its end."""
    ref = reference(name)
    for n in range(2):
        mask = ref['mask'][n].numpy()  # (256,) raster, True = masked
        noise = ref['secondary_noise'][n].double().numpy()
        keep = int(np.floor((~mask).sum() * 0.75))
        rank = np.argsort(np.argsort(mask + noise, kind='stable'),
                          kind='stable')
        official = rank >= keep
        np.testing.assert_array_equal(official,
                                      ref['secondary_mask'][n].numpy())

        # the generator's draws: a visible slot per 2x2 block (row-major
        # blocks, slot 2 * dy + dx), the visible tokens in noise order
        slots = np.flatnonzero(~_blocks(mask.reshape(16, 16))) % 4

        def randint(high, size=None):
            assert (high, size) == (4, 64)
            return slots

        def permutation(kept):
            return kept[np.argsort(noise[kept], kind='stable')]

        monkeypatch.setattr(np.random, 'randint', randint)
        monkeypatch.setattr(np.random, 'permutation', permutation)
        results = _draw('UM')
        monkeypatch.undo()
        np.testing.assert_array_equal(results['mask'].reshape(-1), mask)
        np.testing.assert_array_equal(
            results['secondary_mask'].numpy().reshape(-1), official)
