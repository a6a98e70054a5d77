# Copyright (c) um-mae contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
from mmpretrain.datasets import CustomDataset

from um_mae.datasets.transforms import CheckedLoadImageFromFile
from um_mae.toolkit.demo_data import make_pretrain_images


@pytest.fixture
def folder(tmp_path):
    paths = make_pretrain_images(str(tmp_path), num_images=4, size=64)
    with open(paths[1], 'rb') as f:
        data = f.read()
    with open(paths[1], 'wb') as f:  # truncated JPEG
        f.write(data[:len(data) // 2])
    with open(paths[2], 'wb') as f:  # not an image at all
        f.write(b'this is not a jpeg')
    return str(tmp_path), paths


def test_good_image(folder):
    _, paths = folder
    out = CheckedLoadImageFromFile()(dict(img_path=paths[0]))
    assert out['img'].shape == (64, 64, 3) and out['img'].dtype == np.uint8


@pytest.mark.parametrize('index', [1, 2], ids=['truncated', 'corrupt'])
def test_raise_policy_names_file_and_fix(folder, index):
    _, paths = folder
    with pytest.raises(ValueError) as e:
        CheckedLoadImageFromFile()(dict(img_path=paths[index]))
    assert paths[index] in str(e.value)
    assert "on_error='skip'" in str(e.value)


@pytest.mark.parametrize('index', [1, 2], ids=['truncated', 'corrupt'])
def test_skip_policy_returns_none(folder, index):
    _, paths = folder
    t = CheckedLoadImageFromFile(on_error='skip')
    assert t(dict(img_path=paths[index])) is None


def test_skip_policy_in_a_dataset_draws_other_samples(folder):
    root, paths = folder
    ds = CustomDataset(
        data_root=root,
        with_label=False,
        pipeline=[dict(type='CheckedLoadImageFromFile', on_error='skip')])
    loaded = {osp.basename(ds[i]['img_path']) for i in range(len(ds))}
    assert loaded <= {osp.basename(paths[0]), osp.basename(paths[3])}


def test_bad_policy():
    with pytest.raises(ValueError, match="'raise' or 'skip'"):
        CheckedLoadImageFromFile(on_error='ignore')


@pytest.mark.parametrize('channels', [1, 3, 4], ids=['grey', 'bgr', 'bgra'])
def test_16bit_png_is_scaled_not_clipped(tmp_path, channels):
    import cv2
    rng = np.random.default_rng(0)
    shape = (32, 32) if channels == 1 else (32, 32, channels)
    img16 = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    path = str(tmp_path / 'deep.png')
    cv2.imwrite(path, img16)
    out = CheckedLoadImageFromFile()(dict(img_path=path))['img']
    expected = np.round(img16 / 257.).astype(np.uint8)
    if channels == 1:
        expected = np.repeat(expected[..., None], 3, axis=2)
    expected = expected[..., :3]
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out, expected)
    assert (out == 255).mean() < 0.01
