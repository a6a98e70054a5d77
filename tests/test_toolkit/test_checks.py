# Copyright (c) um-mae contributors. All rights reserved.
"""Data problems the toolboxes pass over in silence are found and counted."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import run_tool

from um_mae.toolkit.checks import (check_coco, check_image_folder,
                                   check_seg_folders)
from um_mae.toolkit.demo_data import (make_coco_layout, make_pretrain_images,
                                      make_seg_shapes)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHECK = osp.join(REPO, 'tools', 'check_dataset.py')


def run_check(*args):
    """``python tools/check_dataset.py ARGS``: exit code and output."""
    return run_tool(CHECK, *args, timeout=300)


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
    # mmdet's filter_empty_gt keeps images with raw annotations: they train
    # as background, and training stops on such a file
    kind = 'images trained as background only (every box dropped)'
    assert report.problem_count(kind) == 2
    assert report.problem_count('training stops (DataSummaryHook)') == 1


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


class _Runner:
    """What DataSummaryHook reads of a runner."""

    def __init__(self, dataset):
        self.warnings = []
        self.train_dataloader = type('Loader', (), {'dataset': dataset})
        self.logger = type('Logger', (), {
            'warning': staticmethod(self.warnings.append)})


def _gfl_train_dataset(root):
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'det', 'gfl',
                 'gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = root
    with DefaultScope.overwrite_default_scope('mmdet'):
        return ds_cfg.to_dict(), DATASETS.build(ds_cfg)


@pytest.mark.dense
def test_coco_without_usable_boxes_stops_training_and_the_checker(tmp_path):
    """The shipped GFL config's dataset, the hook and the checker agree."""
    from um_mae.engine import DataSummaryHook
    from um_mae.toolkit.checks import check_dataset_config
    root = str(tmp_path / 'coco')
    ann, _ = make_coco_layout(root, num_train=3, num_val=1).values()
    with open(ann) as f:
        data = json.load(f)
    unusable = ([5, 5, 0, 4], [5, 5, -3, 4], [900, 900, 10, 10])
    for i, a in enumerate(data['annotations']):
        a['bbox'] = unusable[i % 3]
    with open(ann, 'w') as f:
        json.dump(data, f)
    ds_cfg, dataset = _gfl_train_dataset(root)
    assert len(dataset) == 3  # filter_empty_gt keeps them: background only
    with pytest.raises(ValueError) as info:
        DataSummaryHook().before_train(_Runner(dataset))
    msg = str(info.value)
    assert msg.startswith(f'{ann}: 0 of {len(data["annotations"])} '
                          'annotations are usable')
    assert 'training would learn background only' in msg and '\n' not in msg
    report, = check_dataset_config(ds_cfg, 'mmdet')
    assert report.problem_count('training stops (DataSummaryHook)') == 1
    assert msg in str(report)
    kind = 'images trained as background only (every box dropped)'
    assert report.problem_count(kind) == len(dataset)
    assert report.problem_count('images skipped in training') == 0


@pytest.mark.dense
def test_usable_fraction_threshold_from_the_config(coco):
    from um_mae.engine import DataSummaryHook
    root, _, _ = coco
    ds_cfg, dataset = _gfl_train_dataset(root)
    DataSummaryHook(min_usable_fraction=0.4).before_train(_Runner(dataset))
    with pytest.raises(ValueError, match='3 of 7 annotations are usable, '
                       'fewer than min_usable_fraction=0.5'):
        DataSummaryHook(min_usable_fraction=0.5).before_train(
            _Runner(dataset))


def test_dangling_image_links_are_logged(tmp_path):
    from mmpretrain.datasets import CustomDataset

    from um_mae.engine import DataSummaryHook
    folder = str(tmp_path / 'images')
    make_pretrain_images(folder, num_images=2, size=32)
    os.symlink(str(tmp_path / 'gone.jpg'), osp.join(folder, 'lost.jpg'))
    dataset = CustomDataset(data_root=folder, with_label=False)
    assert len(dataset) == 2  # the link is skipped by the folder scan
    runner = _Runner(dataset)
    DataSummaryHook().before_train(runner)
    msg, = runner.warnings
    assert '1 dangling symbolic link(s) skipped' in msg
    assert f'{folder}/lost.jpg -> {tmp_path}/gone.jpg' in msg


def test_imagenet_config_checks_the_list_and_decodes(tmp_path):
    """ImageNet reads meta/train.txt: a listed file that is missing and a
    truncated JPEG are found without any option."""
    from um_mae.toolkit.checks import check_dataset_config
    root = tmp_path / 'imagenet'
    make_pretrain_images(str(root / 'train' / 'n01'), num_images=2, size=64)
    good = root / 'train' / 'n01' / '0000.jpg'
    data = (root / 'train' / 'n01' / '0001.jpg').read_bytes()
    (root / 'train' / 'n01' / '0001.jpg').write_bytes(data[:len(data) // 2])
    (root / 'meta').mkdir()
    (root / 'meta' / 'train.txt').write_text(
        'n01/0000.jpg 0\nn01/0001.jpg 0\nn01/missing.jpg 0\n')
    ds_cfg = dict(
        type='mmpretrain.PerSampleSeedDataset',
        dataset=dict(type='ImageNet', data_root=str(root), split='train'))
    report, = check_dataset_config(ds_cfg, 'mmpretrain')
    assert report.counts['images'] == 3, str(report)
    assert report.problem_count('listed image files that are missing') == 1
    assert report.problem_count('unreadable images') == 1
    assert 'missing.jpg (line 3)' in str(report) and str(good) not in str(
        report)
    # headers only: the truncated file passes, and that is the option's word
    report, = check_dataset_config(ds_cfg, 'mmpretrain', full=False)
    assert report.problem_count('unreadable images') == 0


@pytest.mark.dense
def test_label_map_of_another_size_stops_when_read(tmp_path):
    """The shipped demo segmentation config reads the sample and stops."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    import um_mae  # noqa: F401 - registers CheckSegMapSize
    root = str(tmp_path / 'seg')
    make_seg_shapes(root, num_train=2, num_val=1)
    label = sorted(os.listdir(osp.join(root, 'ann_dir', 'train')))[1]
    path = osp.join(root, 'ann_dir', 'train', label)
    cv2.imwrite(path, cv2.resize(cv2.imread(path, 0), (64, 96),
                                 interpolation=cv2.INTER_NEAREST))
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'seg', 'upernet',
                 'pvt-demo_upernet_1xb4-1600it_demo-seg-128px.py'))
    cfg.train_dataloader.dataset.data_root = root
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        index = [
            osp.basename(dataset.get_data_info(i)['seg_map_path'])
            for i in range(len(dataset))
        ].index(label)
        dataset[1 - index]  # the other sample reads
        with pytest.raises(ValueError) as info:
            dataset[index]
    assert str(info.value).startswith(
        f'segmentation label map {path} is 96 x 64 but its image ')
    assert '128 x 128: label maps must have the size of their image' in str(
        info.value)
