# Copyright (c) um-mae contributors. All rights reserved.
"""The official-model fixtures ship with the repository, unchanged.

``tests/data/reference/`` stores each fixture as byte shards under 2 MB
(see its README.md); ``load_reference`` joins them. These tests check that
the joined files are the originals bit for bit.
"""
import hashlib
import os
import os.path as osp

import pytest
import torch
from conftest import (REPO_ROOT, SHIPPED_REFERENCE_DIR, join_reference_shards,
                      reference_sums)

NAMES = ('mae_pvt.pt', 'mae_swin.pt', 'mae_vit.pt', 'ft_pvt.pt', 'ft_swin.pt')
#: the folder the fixtures were first published in, next to a clone here
ORIGINALS = osp.join(osp.dirname(REPO_ROOT), 'shared', 'reference')


def test_every_fixture_is_shipped_in_files_under_2mb():
    assert sorted(reference_sums()) == sorted(NAMES)
    for name in os.listdir(SHIPPED_REFERENCE_DIR):
        size = osp.getsize(osp.join(SHIPPED_REFERENCE_DIR, name))
        assert size < 2_000_000, (name, size)
    assert osp.isfile(osp.join(SHIPPED_REFERENCE_DIR, 'README.md'))


@pytest.mark.parametrize('name', NAMES)
def test_joined_shards_have_the_recorded_sum(name):
    data = join_reference_shards(name)
    assert hashlib.sha256(data).hexdigest() == reference_sums()[name]


def test_a_changed_shard_is_refused(tmp_path, monkeypatch):
    """A shard that lost a byte is named, not loaded."""
    import conftest
    for shard in os.listdir(SHIPPED_REFERENCE_DIR):
        data = open(osp.join(SHIPPED_REFERENCE_DIR, shard), 'rb').read()
        if shard == 'mae_vit.pt.00':
            data = data[:-1]
        (tmp_path / shard).write_bytes(data)
    monkeypatch.setattr(conftest, 'SHIPPED_REFERENCE_DIR', str(tmp_path))
    conftest.join_reference_shards.cache_clear()
    try:
        with pytest.raises(
                ValueError,
                match=r"mae_vit.pt: the shards "
                r"\['mae_vit.pt.00'\] .* not 055accc"):
            conftest.join_reference_shards('mae_vit.pt')
    finally:
        conftest.join_reference_shards.cache_clear()


@pytest.mark.skipif(
    not osp.isdir(ORIGINALS), reason=f'no original fixtures in {ORIGINALS}')
@pytest.mark.parametrize('name', NAMES)
def test_shipped_fixtures_equal_the_originals(name):
    with open(osp.join(ORIGINALS, name), 'rb') as f:
        original = f.read()
    assert join_reference_shards(name) == original
    # and what the tests get from them is the same, value by value
    import io
    ours = torch.load(
        io.BytesIO(join_reference_shards(name)), weights_only=True)
    theirs = torch.load(io.BytesIO(original), weights_only=True)
    _assert_identical(ours, theirs, name)


def _assert_identical(a, b, where):
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_identical(a[key], b[key], f'{where}[{key!r}]')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f'{where}[{i}]')
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        # bit for bit (NaN == NaN, -0.0 != 0.0)
        assert torch.equal(_bits(a), _bits(b)), where
    else:
        assert a == b, where


def _bits(tensor):
    return tensor.contiguous().reshape(-1).view(torch.uint8)
