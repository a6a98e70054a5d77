# Copyright (c) um-mae contributors. All rights reserved.
"""tools/visualize_feature_pyramid.py on the simple-pyramid demo detector.

The tool runs in-process on a freshly initialised model of the demo config
and a generated 128-px image.
"""
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

import um_mae  # noqa: F401
from um_mae.toolkit.visualization import (feature_energy, heatmap_overlay,
                                          pyramid_maps)

# the figures come from mmdet detectors with mmseg's pyramid necks
pytestmark = pytest.mark.dense

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(
    REPO, 'configs', 'det', 'faster_rcnn',
    'faster-rcnn_vit-demo_simple-pyramid_mae-demo-pre_stage1-frozen_'
    '1xb2-3e_demo-coco-128px.py')
PRETRAIN = osp.join(REPO, 'configs', 'pretrain', 'mae',
                    'mae_vit-tiny-p16_1xb8-10e_demo-128px.py')
TILE = 64


def load_tool():
    path = osp.join(REPO, 'tools', 'visualize_feature_pyramid.py')
    spec = importlib.util.spec_from_file_location('visualize_pyramid', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _detector():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp('pyramid')
    img = np.full((128, 128, 3), 90, np.uint8)
    img[40:90, 30:100] = (230, 40, 40)  # one red rectangle
    image = str(root / 'shapes.png')
    Image.fromarray(img).save(image)
    checkpoint = str(root / 'detector.pth')
    torch.save(dict(state_dict=_detector().state_dict()), checkpoint)
    return image, checkpoint


def test_feature_energy_and_overlay():
    x = torch.zeros(3, 4, 4)
    x[:, 1, 2] = 5.  # one active cell
    energy = feature_energy(x)
    assert energy.shape == (4, 4) and energy[1, 2] == 1 and energy[0, 0] == 0
    out = heatmap_overlay(energy, np.zeros((8, 8, 3), np.uint8), alpha=1.)
    # each cell covers a 2 x 2 block; the hot one is brighter
    assert out.shape == (8, 8, 3)
    assert out[2:4, 4:6].sum() > out[0:2, 0:2].sum()
    assert (out[2:4, 4:6] == out[2, 4]).all()


def test_pyramid_maps_of_the_simple_pyramid_detector():
    model = _detector().eval()
    rows = pyramid_maps(model, torch.randn(1, 3, 128, 128))
    assert [name for name, _ in rows] == [
        'backbone', 'neck.0 ViTSimplePyramid', 'neck.1 FPN'
    ]
    sides = [[m.shape[-1] for m in maps] for _, maps in rows]
    assert sides == [[8], [32, 16, 8, 4], [32, 16, 8, 4, 2]]
    with pytest.raises(TypeError, match='no backbone'):
        pyramid_maps(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def test_tool_writes_the_pyramid_png(inputs, tmp_path, capsys):
    image, checkpoint = inputs
    out = str(tmp_path / 'figs' / 'pyramid.png')
    load_tool().main(
        [DEMO, checkpoint, image, '--out', out, '--tile',
         str(TILE)])
    assert 'written' in capsys.readouterr().out
    png = np.asarray(Image.open(out).convert('RGB'))
    # 3 rows (backbone, simple pyramid, FPN), the input + up to 5 maps
    label = 8 + 6 * len('neck.0 ViTSimplePyramid')
    pad = 4
    assert png.shape == (3 * (TILE + pad) + pad,
                         label + 6 * (TILE + pad) + pad, 3)

    def tile(row, col):
        y = pad + row * (TILE + pad)
        x = label + pad + col * (TILE + pad)
        return png[y:y + TILE, x:x + TILE]

    assert (tile(0, 2) == 255).all()  # the backbone has one map
    assert (tile(1, 5) == 255).all()  # the pyramid four
    for row, col in ((0, 1), (1, 1), (1, 4), (2, 1), (2, 5)):
        assert tile(row, col).std() > 1, (row, col)  # a heat map
    # the first column is the network input: the red rectangle
    red = tile(1, 0)[TILE * 45 // 128, TILE * 60 // 128]
    assert red[0] > 200 and red[1] < 80


def test_bad_inputs_are_one_line(inputs, tmp_path):
    image, checkpoint = inputs
    tool = load_tool()
    cases = [
        ([DEMO, checkpoint, str(tmp_path / 'none.png')],
         "image '.*none.png' does not exist"),
        ([DEMO, str(tmp_path / 'none.pth'), image],
         "checkpoint '.*none.pth' does not exist"),
        ([PRETRAIN, checkpoint, image],
         "is no detection or segmentation config .*'mmpretrain'"),
        ([DEMO, checkpoint, image, '--out', str(tmp_path / 'x.txt')],
         r'\.txt'),
    ]
    for argv, pattern in cases:
        with pytest.raises(SystemExit) as info:
            tool.main(argv)
        msg = str(info.value.code)
        assert msg.startswith('error: ') and '\n' not in msg, msg
        assert re.search(pattern, msg), msg


def test_unreadable_image_is_one_line(inputs, tmp_path, capsys):
    _, checkpoint = inputs
    bad = tmp_path / 'not-an-image.png'
    bad.write_text('<html>404</html>')
    with pytest.raises(SystemExit) as info:
        load_tool().main([DEMO, checkpoint, str(bad), '--out',
                          str(tmp_path / 'p.png')])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"error: cannot read '{bad}' with the test "
                             'pipeline')
    assert len(err) == 2 and 'UM_MAE_DEBUG' in err[1]  # the debug hint


def test_checkpoint_of_another_model_is_refused(inputs, tmp_path, capsys):
    image, checkpoint = inputs
    state = torch.load(checkpoint)['state_dict']
    backbone = str(tmp_path / 'pretrained-backbone.pth')  # no neck, no head
    torch.save({
        k: v
        for k, v in state.items() if k.startswith('backbone.')
    }, backbone)
    out = str(tmp_path / 'p.png')
    with pytest.raises(SystemExit) as info:
        load_tool().main([DEMO, backbone, image, '--out', out])
    err = capsys.readouterr().err
    assert info.value.code == 1, err
    assert err.startswith(f'error: {backbone} does not fit ')
    assert 'tensors missing (e.g. neck.' in err and '--allow-partial' in err
    assert not osp.exists(out)
    load_tool().main([DEMO, backbone, image, '--out', out, '--allow-partial'])
    assert osp.isfile(out)
