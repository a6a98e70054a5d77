# Copyright (c) um-mae contributors. All rights reserved.
"""Data problems the toolboxes pass over in silence are found and counted."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from um_mae.toolkit.checks import (check_coco, check_image_folder,
                                   check_seg_folders)
from um_mae.toolkit.demo_data import (make_coco_layout, make_pretrain_images,
                                      make_seg_shapes)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHECK = osp.join(REPO, 'tools', 'check_dataset.py')


def run_check(*args):
    proc = subprocess.run([sys.executable, CHECK, *args],
                          cwd=REPO,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'),
                          capture_output=True,
                          text=True,
                          timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def coco(tmp_path):
    root = str(tmp_path / 'coco')
    ann, _ = make_coco_layout(
        root, num_train=3, num_val=1, max_shapes=1).values()
    with open(ann) as f:
        data = json.load(f)
    base = data['annotations'][0]
    bad = {
        'boxes of zero or negative size (w or h < 1)': [5, 5, 0, 4],
        'boxes outside their image': [500, 500, 10, 10],
        'boxes that are not 4 finite numbers': [float('nan'), 1, 2, 3],
    }
    for i, box in enumerate(bad.values()):
        data['annotations'].append(dict(base, id=1000 + i, bbox=box))
    data['annotations'].append(dict(base, id=2000, category_id=999))
    with open(ann, 'w') as f:
        json.dump(data, f)
    return root, ann, bad


@pytest.mark.dense
def test_coco_dropped_annotations_are_counted(coco):
    root, ann, bad = coco
    report = check_coco(ann, osp.join(root, 'train2017'))
    for kind in bad:
        assert report.problem_count(kind) == 1, str(report)
    assert report.problem_count('annotations of an unknown category id') == 1
    assert 'annotation id 2000' in str(report)
    assert not report.ok


@pytest.mark.dense
def test_coco_only_bad_boxes_leave_every_image_unused(tmp_path):
    root = str(tmp_path / 'coco')
    ann, _ = make_coco_layout(root, num_train=2, num_val=1).values()
    with open(ann) as f:
        data = json.load(f)
    for a in data['annotations']:
        a['bbox'] = [0, 0, 0, 0]
    with open(ann, 'w') as f:
        json.dump(data, f)
    report = check_coco(ann)
    kind = ('images without a usable annotation (skipped in training with '
            'filter_empty_gt)')
    assert report.problem_count(kind) == 2


@pytest.mark.dense
def test_config_mode_on_a_shipped_config(coco):
    root, _, _ = coco
    rc, out = run_check(
        osp.join(REPO, 'configs', 'det', 'gfl',
                 'gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'),
        '--data-root', root)
    assert rc == 1
    assert 'train_dataloader:' in out and 'boxes outside their image' in out
    assert 'Traceback' not in out


def test_dangling_link_loop_and_16bit_images(tmp_path):
    root = tmp_path / 'images'
    make_pretrain_images(str(root), num_images=2, size=32)
    os.symlink(str(root / 'gone.jpg'), str(root / 'dangling.jpg'))
    os.symlink('..', str(root / 'up'))
    cv2.imwrite(
        str(root / 'deep.png'),
        np.full((8, 8), 60000, np.uint16))
    report = check_image_folder(str(root))
    assert report.counts['images'] == 3
    assert report.problem_count(
        'dangling symbolic links (skipped by training)') == 1
    assert report.problem_count('symbolic link loops') == 1
    assert any(k.startswith('16-bit images') for k in report.problems)
    rc, out = run_check('images', str(root))
    assert rc == 1 and 'dangling.jpg' in out


def test_empty_folder(tmp_path):
    report = check_image_folder(str(tmp_path))
    assert report.problem_count('empty: no image found') == 1


def test_segmentation_labels(tmp_path):
    root = tmp_path / 'seg'
    make_seg_shapes(str(root), num_train=4, num_val=0)
    img_dir, ann_dir = root / 'img_dir' / 'train', root / 'ann_dir' / 'train'
    assert check_seg_folders(str(img_dir), str(ann_dir), 4).ok
    cv2.imwrite(str(ann_dir / '00000.png'), np.full((128, 128), 9, np.uint8))
    cv2.imwrite(str(ann_dir / '00001.png'), np.zeros((64, 64), np.uint8))
    cv2.imwrite(str(ann_dir / '00002.png'),
                np.zeros((128, 128, 3), np.uint8))
    os.remove(str(ann_dir / '00003.png'))
    report = check_seg_folders(str(img_dir), str(ann_dir), 4)
    assert report.problem_count('label values outside 0..3 and 255') == 1
    assert report.problem_count(
        'label maps of another size than their image') == 1
    assert report.problem_count(
        'label maps that are not single-channel (colour-coded?)') == 1
    assert report.problem_count('images without a label map') == 1
    # reduce_zero_label: 0 is ignored, k becomes k - 1
    cv2.imwrite(str(ann_dir / '00000.png'), np.full((128, 128), 4, np.uint8))
    report = check_seg_folders(
        str(img_dir), str(ann_dir), 4, reduce_zero_label=True)
    assert report.problem_count('label values outside 0..3 and 255') == 0


@pytest.mark.dense
def test_training_logs_dropped_annotations(coco):
    """The hook the shipped configs declare, on the dataset mmdet builds."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from um_mae.engine import DataSummaryHook
    root, _, _ = coco
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'det', 'gfl',
                 'gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = root
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(ds_cfg)

    class Runner:
        warnings = []

        class train_dataloader:
            pass

        class logger:

            @staticmethod
            def warning(msg):
                Runner.warnings.append(msg)

    Runner.train_dataloader.dataset = dataset
    DataSummaryHook().before_train(Runner)
    msg, = Runner.warnings
    assert '4 of 7 annotations dropped' in msg
    assert '1 boxes outside their image' in msg
    assert 'tools/check_dataset.py' in msg
