# Copyright (c) um-mae contributors. All rights reserved.
"""tools/visualize_masks.py, tools/visualize_reconstruction.py, TensorBoard.

The tools run in-process on 64-px images; reconstruction checkpoints are
freshly initialised models.
"""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image

from um_mae.toolkit.pretrain_inputs import load_pretrain_config, quiet_logger
from um_mae.toolkit.visualization import (DROPPED_COLOR, SECONDARY_COLOR,
                                          image_grid, paint_masks,
                                          sample_strategy_masks)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'ummae_pvt':
    'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py',
    'ummae_swin':
    'configs/pretrain/ummae/ummae_swin-demo_1xb8-10e_demo-128px.py',
    'simmim_pvt':
    'configs/pretrain/simmim/simmim_pvt-demo_1xb8-10e_demo-128px.py',
    'mae_vit':
    'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py',
    'ummae_vit':
    'configs/pretrain/ummae/ummae_vit-tiny-p16_1xb8-10e_demo-128px.py',
}


def load_tool(name):
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from skimage import data
    root = tmp_path_factory.mktemp('images')
    paths = []
    for name in ('astronaut', 'chelsea'):
        path = str(root / f'{name}.png')
        Image.fromarray(getattr(data, name)()).save(path)
        paths.append(path)
    return paths


def test_paint_masks_colours():
    img = np.full((64, 64, 3), 200, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    secondary = mask.copy()
    secondary[1, 1] = True
    out = paint_masks(img, mask, secondary, secondary_alpha=1.)
    assert (out[:16, :16] == DROPPED_COLOR).all()
    assert (out[16:32, 16:32] == SECONDARY_COLOR).all()
    assert (out[32:, 32:] == 200).all()
    with pytest.raises(ValueError, match='does not tile'):
        paint_masks(img, np.zeros((5, 5), bool))


def test_strategy_masks():
    masks = sample_strategy_masks(64, seed=3)
    assert list(masks) == ['RS', 'GS', 'US', 'UM']
    for name, (mask, secondary) in masks.items():
        assert mask.shape == (4, 4) and mask.sum() == 12
        assert (secondary is not None) == (name == 'UM')
    # the same seed gives UM the uniform sample of US, plus secondary masking
    assert np.array_equal(masks['US'][0], masks['UM'][0])
    assert (masks['UM'][1] & ~masks['UM'][0]).sum() == 1


def test_visualize_masks_png(images, tmp_path):
    out = str(tmp_path / 'masks.png')
    load_tool('visualize_masks').main(
        [images[0], '--size', '64', '--out', out])
    with Image.open(out) as png:
        # 5 panels of 64 px, 4-px gaps, a 14-px label band
        assert png.size == (5 * (64 + 4) + 4, 64 + 4 + 4 + 14)


def test_image_grid_rejects_mixed_sizes():
    with pytest.raises(ValueError, match='resize them alike'):
        image_grid(
            [[np.zeros((8, 8, 3), np.uint8),
              np.zeros((4, 4, 3), np.uint8)]])


@pytest.mark.parametrize('name', list(CONFIGS))
def test_visualize_reconstruction_png(name, images, tmp_path):
    quiet_logger()
    config = osp.join(REPO, CONFIGS[name])
    cfg = load_pretrain_config(config, 64)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'recon.png')
    load_tool('visualize_reconstruction').main(
        [config, ckpt, *images, '--size', '64', '--out', out])
    with Image.open(out) as png:
        # 2 rows x 4 panels of 64 px, 4-px gaps, a 14-px label band
        assert png.size == (4 * (64 + 4) + 4, 2 * (64 + 4) + 4 + 14)
        grid = np.asarray(png.convert('RGB'))
    # column 4 shows the original on the tokens the encoder saw
    top, left = 14 + 4, 4
    orig = grid[top:top + 64, left:left + 64].astype(int)
    pasted = grid[top:top + 64, left + 3 * 68:left + 3 * 68 + 64].astype(int)
    masked = grid[top:top + 64, left + 68:left + 68 + 64]
    seen = (masked != DROPPED_COLOR).any(-1)
    if 'ummae' in name:  # secondary-masked tokens are tinted, not seen
        seen &= ~(np.abs(masked.astype(int) - orig).max(-1) > 2)
    assert seen.any()
    assert np.abs(pasted - orig)[seen].max() <= 1


def test_visualize_reconstruction_needs_reconstruct(images, tmp_path):
    """A model without ``reconstruct`` (plain mmpretrain MAE) is refused."""
    child = tmp_path / 'plain_mae.py'
    child.write_text(f"_base_ = ['{osp.join(REPO, CONFIGS['mae_vit'])}']\n"
                     "model = dict(type='MAE')\n")
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(SystemExit, match='MAE has no reconstruct'):
        load_tool('visualize_reconstruction').main([
            str(child),
            str(ckpt), images[0], '--size', '64', '--out',
            str(tmp_path / 'r.png')
        ])


def test_tensorboard_backend_from_config(tmp_path):
    """The documented override builds; writing needs tensorboard."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import VISUALIZERS
    child = tmp_path / 'tb.py'
    child.write_text(
        f"_base_ = ['{osp.join(REPO, CONFIGS['ummae_pvt'])}']\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
        "dict(type='TensorboardVisBackend')])\n")
    cfg = Config.fromfile(str(child))
    init_default_scope('mmpretrain')
    vis = VISUALIZERS.build(
        dict(cfg.visualizer, name='tb_test', save_dir=str(tmp_path / 'vis')))
    assert list(
        vis._vis_backends) == ['LocalVisBackend', 'TensorboardVisBackend']
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match='pip install'):
            vis.add_scalars({'loss': 1.}, step=1)
        pytest.skip('tensorboard is not installed (pip install tensorboard)')
    vis.add_scalars({'loss': 1.}, step=1)
    vis.close()
    assert any(
        f.startswith('events.out.tfevents')
        for f in os.listdir(tmp_path / 'vis' / 'vis_data'))
