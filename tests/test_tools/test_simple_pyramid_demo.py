# Copyright (c) um-mae contributors. All rights reserved.
"""The simple-pyramid Faster R-CNN demo, stage 1 -> stage 2, via the tools.

As docs/transfer.md runs it, with a few images and one epoch per stage:
stage 1 trains with the backbone frozen and keeps its best checkpoint under the
name the stage-2 config loads (``load_from``, resolved from the working
directory as in a user's run); stage 2 trains the backbone; tools/test.py
evaluates it. The pre-trained backbone is a random checkpoint of the demo
ViT.
"""
import json
import os.path as osp

import pytest
import torch
from conftest import run_tool
from mmengine.config import Config

import um_mae  # noqa: F401
from um_mae.models.backbones import WindowedViT
from um_mae.toolkit.demo_data import make_coco_shapes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDER = osp.join(REPO, 'configs', 'det', 'faster_rcnn')
NAME = 'faster-rcnn_vit-demo_simple-pyramid_mae-demo-pre_{}_1xb2-3e_' \
    'demo-coco-128px'
# a Faster R-CNN (mmdet) on COCO-format data: needs the dense stack
pytestmark = [pytest.mark.dense, pytest.mark.slow]

STAGE1, STAGE2 = NAME.format('stage1-frozen'), NAME.format('stage2-jitter')
# a few images, one epoch, every detection kept (the score of a barely
# trained classifier may be below the configured threshold), no workers
SMALL = [
    'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=4',
    'val_dataloader.dataset.indices=4', 'test_dataloader.dataset.indices=4',
    'model.test_cfg.rcnn.score_thr=0.0'
] + [
    f'{loader}.{key}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False')
]


def _run(*args, cwd):
    rc, out = run_tool(*args, cwd=str(cwd))
    assert rc == 0, out[-6000:]
    return out


def _state(path):
    return torch.load(path, map_location='cpu',
                      weights_only=False)['state_dict']


def test_demo_stage1_then_stage2(tmp_path):
    data = str(tmp_path / 'demo_coco')
    make_coco_shapes(data, num_train=8, num_val=4)
    cfg = Config.fromfile(osp.join(FOLDER, STAGE1 + '.py'))
    kwargs = cfg.model.backbone.to_dict()
    for key in ('type', 'init_cfg', 'frozen'):
        kwargs.pop(key)
    torch.manual_seed(0)
    vit = WindowedViT(**kwargs)
    vit.init_weights()
    pretrained = str(tmp_path / 'mae_demo.pth')
    torch.save(
        dict(state_dict={f'backbone.{k}': v
                         for k, v in vit.state_dict().items()}), pretrained)

    train = osp.join(REPO, 'tools', 'train.py')
    out = _run(
        train,
        osp.join(FOLDER, STAGE1 + '.py'),
        '--data-root',
        data,
        '--cfg-options',
        f'pretrained={pretrained}',
        *SMALL,
        cwd=tmp_path)
    assert f'Loaded {pretrained} into WindowedViT' in out
    best1 = osp.join(tmp_path, 'work_dirs', STAGE1,
                     'best_coco_bbox_mAP_stage1.pth')
    assert osp.isfile(best1), out[-3000:]
    stage1 = _state(best1)
    for key, value in vit.state_dict().items():  # frozen: as loaded
        assert torch.equal(stage1[f'backbone.{key}'], value), key

    # stage 2 finds stage 1's best checkpoint by the config's load_from
    out = _run(
        train,
        osp.join(FOLDER, STAGE2 + '.py'),
        '--data-root',
        data,
        '--cfg-options',
        *SMALL,
        cwd=tmp_path)
    assert 'Load checkpoint from work_dirs/' + STAGE1 + \
        '/best_coco_bbox_mAP_stage1.pth' in out
    assert 'is initialised randomly (pretrained=None)' in out
    best2 = osp.join(tmp_path, 'work_dirs', STAGE2,
                     'best_coco_bbox_mAP_stage2.pth')
    assert osp.isfile(best2), out[-3000:]
    stage2 = _state(best2)
    trained = [
        k for k in stage1
        if k.startswith('backbone.') and not torch.equal(stage1[k], stage2[k])
    ]
    assert 'backbone.layers.3.attn.qkv.weight' in trained

    metrics = str(tmp_path / 'metrics.json')
    _run(
        osp.join(REPO, 'tools', 'test.py'),
        osp.join(FOLDER, STAGE2 + '.py'),
        best2,
        '--data-root',
        data,
        '--out',
        metrics,
        '--cfg-options',
        *SMALL[1:],
        cwd=tmp_path)
    with open(metrics) as f:
        assert 'coco/bbox_mAP' in json.load(f)
