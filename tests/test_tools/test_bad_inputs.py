# Copyright (c) um-mae contributors. All rights reserved.
"""Every bad input is one line naming the problem and the fix.

The tools run as a user starts them, on shipped configs; each case checks
the exit code, the words of the message and that no traceback is shown.
"""
import errno
import glob
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import run_tool as run

from um_mae.toolkit.demo_data import (make_coco_layout, make_pretrain_images,
                                      make_seg_shapes)

# the shared data fixture writes COCO layouts with mmdet's class names
pytestmark = pytest.mark.dense

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAE_DEMO = 'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py'
GFL_PVT_S = 'configs/det/gfl/gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-' \
    '25e_coco.py'
SEG_DEMO = 'configs/seg/upernet/pvt-demo_upernet_1xb4-1600it_demo-seg-128px.py'
DATA_ROOT = 'train_dataloader.dataset.dataset.data_root'
NO_WORKERS = [
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Folders and files with one problem each."""
    root = tmp_path_factory.mktemp('bad')
    d = {}
    d['images'] = str(root / 'images')
    make_pretrain_images(d['images'], num_images=4, size=128)
    d['empty'] = str(root / 'empty')
    os.makedirs(d['empty'])
    d['loop'] = str(root / 'loop')
    make_pretrain_images(d['loop'], num_images=1, size=128)
    os.symlink('../loop', osp.join(d['loop'], 'self'))
    d['garbage'] = str(root / 'garbage')
    os.makedirs(d['garbage'])
    for i in range(3):
        with open(osp.join(d['garbage'], f'{i}.jpg'), 'w') as f:
            f.write('not an image')
    for name in ('bad_json', 'no_annotations'):
        d[name] = str(root / name)
        ann, _ = make_coco_layout(d[name], num_train=2, num_val=1).values()
    with open(glob.glob(osp.join(d['bad_json'], 'annotations',
                                 '*train*'))[0], 'w') as f:
        f.write('{"images": [')
    ann = glob.glob(osp.join(d['no_annotations'], 'annotations',
                             '*train*'))[0]
    with open(ann) as f:
        coco = json.load(f)
    coco['annotations'] = []
    with open(ann, 'w') as f:
        json.dump(coco, f)
    labels = {
        'seg_values': np.full((128, 128), 9, np.uint8),
        'seg_rgb': np.full((128, 128, 3), 200, np.uint8),
        'seg_size': np.zeros((64, 96), np.uint8),
    }
    for name, label in labels.items():
        d[name] = str(root / name)
        make_seg_shapes(d[name], num_train=2, num_val=1)
        for p in glob.glob(osp.join(d[name], 'ann_dir', '*', '*.png')):
            cv2.imwrite(p, label)
    d['file'] = str(root / 'a_file')
    open(d['file'], 'w').close()
    return d


def train(*args):
    return run('tools/train.py', *args)


CASES = {
    'cfg-options without =': (
        lambda d, w: train(MAE_DEMO, '--work-dir', w, '--cfg-options',
                           'train_cfg.max_epochs'),
        2, ["'train_cfg.max_epochs' is not KEY=VALUE"]),
    'a word for a number': (
        lambda d, w: train(MAE_DEMO, '--work-dir', w, '--cfg-options',
                           f'{DATA_ROOT}={d["images"]}',
                           'train_dataloader.batch_size=abc'),
        1, ["train_dataloader.batch_size='abc'", 'holds a number']),
    'empty image folder': (
        lambda d, w: train(MAE_DEMO, '--work-dir', w, '--data-root',
                           d['empty']),
        1, ['no image found in', 'data_root']),
    'symbolic link loop': (
        lambda d, w: train(MAE_DEMO, '--work-dir', w, '--data-root', d[
            'loop'], '--cfg-options', *NO_WORKERS),
        1, ['symbolic link loop', 'loop/self:']),
    'every image unreadable, skip': (
        lambda d, w: train(
            MAE_DEMO, '--work-dir', w, '--data-root', d['garbage'],
            '--cfg-options', *NO_WORKERS, 'train_dataloader.dataset.dataset.'
            'pipeline.0.type=CheckedLoadImageFromFile',
            'train_dataloader.dataset.dataset.pipeline.0.on_error=skip'),
        1, ['no readable image', "on_error='skip'"]),
    'invalid annotation JSON': (
        lambda d, w: train(GFL_PVT_S, '--fp32', '--work-dir', w,
                           '--data-root', d['bad_json'], '--cfg-options',
                           'pretrained=None'),
        1, ['instances_train2017.json is not valid JSON']),
    'no annotation': (
        lambda d, w: train(GFL_PVT_S, '--fp32', '--work-dir', w,
                           '--data-root', d['no_annotations'],
                           '--cfg-options', 'pretrained=None'),
        1, ['the dataset is empty', 'check_dataset.py']),
    'segmentation label out of range': (
        lambda d, w: train(SEG_DEMO, '--work-dir', w, '--data-root', d[
            'seg_values'], '--cfg-options', *NO_WORKERS,
                           'train_cfg.max_iters=1'),
        1, ['holds the value 9', 'class ids']),
    'colour-coded segmentation labels': (
        lambda d, w: train(SEG_DEMO, '--work-dir', w, '--data-root', d[
            'seg_rgb'], '--cfg-options', *NO_WORKERS,
                           'train_cfg.max_iters=1'),
        1, ['colour channels', 'single-channel']),
    'segmentation labels of another size': (
        lambda d, w: train(SEG_DEMO, '--work-dir', w, '--data-root', d[
            'seg_size'], '--cfg-options', *NO_WORKERS,
                           'train_cfg.max_iters=1'),
        # caught when the sample is read (CheckSegMapSize), naming the files
        1, ['is 64 x 96 but its image', '.jpg is 128 x 128',
            'label maps must have the size of their image']),
    'work dir is a file': (
        lambda d, w: train(MAE_DEMO, '--work-dir', d['file'], '--data-root',
                           d['images']),
        1, ['is a file, not a folder']),
    'test --out of an unknown format': (
        lambda d, w: run('tools/test.py', SEG_DEMO, d['file'], '--work-dir',
                         w, '--data-root', d['seg_values'], '--out',
                         osp.join(w, 'metrics.txt')),
        1, ['cannot write .txt files', '.json']),
    'test --out is a folder': (
        lambda d, w: run('tools/test.py', SEG_DEMO, d['file'], '--work-dir',
                         w, '--data-root', d['seg_values'], '--out', w),
        1, ['is a folder; give a file name']),
    'corrupt image for a figure': (
        lambda d, w: run('tools/visualize_masks.py',
                         osp.join(d['garbage'], '0.jpg'), '--out',
                         osp.join(w, 'masks.png')),
        1, ['cannot read image', '0.jpg']),
    'figure of an unknown format': (
        lambda d, w: run('tools/visualize_masks.py', '--out',
                         osp.join(w, 'masks.txt')),
        1, ['cannot write .txt files', '.png']),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_input_is_one_clear_line(case, data, tmp_path):
    command, code, words = CASES[case]
    rc, out = command(data, str(tmp_path))
    assert rc == code, out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    error = [line for line in out.splitlines() if 'error: ' in line]
    assert len(error) == 1, out[-3000:]
    for word in words:
        assert word in error[0], error[0]


@pytest.mark.parametrize('code,words', [
    # what is intact is said by the checkpoint hook, which knows it
    (errno.ENOSPC, ['the disk is full', '--work-dir']),
    (errno.EROFS, ['read-only', '--work-dir']),
    (errno.EACCES, ['permission denied']),
])
def test_file_system_errors_are_named(code, words):
    """Disk full / read-only / permissions cannot be caused safely in a test
    process; the text the tools print for them is checked directly."""
    from um_mae.toolkit.errors import describe_error
    msg = describe_error(OSError(code, os.strerror(code), '/x/epoch_3.pth'))
    assert msg.startswith('cannot use /x/epoch_3.pth: ')
    for word in words:
        assert word in msg
    assert 'intact' not in msg


def test_an_unknown_error_keeps_its_traceback():
    from um_mae.toolkit.errors import describe_error
    assert describe_error(RuntimeError('a bug')) is None
    assert describe_error(AttributeError('a bug')) is None
