# Copyright (c) um-mae contributors. All rights reserved.
"""Checkpoints given to the tools are read without running code, and the
wrong file is refused in one line (issue: nothing unsafe is unpickled,
wrong checkpoints do not pass)."""
import os.path as osp
import random

import pytest
import torch
from conftest import run_tool as run

from um_mae.toolkit.demo_data import make_pretrain_images, make_seg_shapes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
UMMAE_DEMO = 'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py'
MAE_DEMO = 'configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py'
SEG_DEMO = 'configs/seg/upernet/pvt-demo_upernet_1xb4-1600it_demo-seg-128px.py'


class _RunsCode:
    """Unpickling this creates the file named ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('ckpts')
    images = str(root / 'images')
    make_pretrain_images(images, num_images=8, size=128)
    work = str(root / 'work')
    rc, out = run('tools/train.py', UMMAE_DEMO, '--work-dir', work,
                  '--data-root', images, '--cfg-options',
                  'train_cfg.max_epochs=1', 'train_dataloader.num_workers=0',
                  'train_dataloader.persistent_workers=False')
    assert rc == 0, out[-3000:]
    good = osp.join(work, 'epoch_1.pth')
    f = dict(images=images, good=good)
    f['random'] = str(root / 'random.pth')
    with open(f['random'], 'wb') as fh:
        # seeded: the same bytes every run (none of the formats' headers)
        fh.write(random.Random(0).randbytes(4096))
    f['truncated'] = str(root / 'truncated.pth')
    with open(good, 'rb') as src, open(f['truncated'], 'wb') as dst:
        dst.write(src.read()[:2048])
    f['weights'] = str(root / 'weights.pth')
    torch.save(torch.load(good, weights_only=False)['state_dict'],
               f['weights'])
    f['marker'] = str(root / 'code_ran')
    f['crafted'] = str(root / 'crafted.pth')
    state = torch.load(good, weights_only=False)
    state['meta']['payload'] = _RunsCode(f['marker'])
    torch.save(state, f['crafted'])
    f['seg'] = str(root / 'seg')
    make_seg_shapes(f['seg'], num_train=2, num_val=1)
    return f


@pytest.mark.parametrize('name,words', [
    ('random', ['is not a checkpoint', 'unknown binary data']),
    ('truncated', ['truncated or corrupt', 'download it again']),
    ('weights', ['cannot be resumed', 'load_from=', 'pretrained=']),
])
def test_resume_refuses_a_file_without_training_state(files, name, words,
                                                      tmp_path):
    rc, out = run('tools/train.py', UMMAE_DEMO, '--work-dir', str(tmp_path),
                  '--data-root', files['images'], '--resume', files[name])
    assert rc == 1, out[-3000:]
    assert 'Traceback' not in out
    for word in words:
        assert word in out, out[-2000:]


def test_crafted_checkpoint_runs_no_code(files, tmp_path):
    for tool in (['tools/train.py', UMMAE_DEMO, '--work-dir',
                  str(tmp_path), '--data-root', files['images'], '--resume'],
                 ['tools/visualize_reconstruction.py', UMMAE_DEMO]):
        args = tool + [files['crafted']]
        if 'visualize' in tool[0]:
            args += [osp.join(files['images'], '0000.jpg'), '--out',
                     str(tmp_path / 'r.png')]
        rc, out = run(*args)
        assert rc == 1, out[-3000:]
        assert 'UM_MAE_UNSAFE_PICKLE=1' in out and 'Traceback' not in out
        assert not osp.exists(files['marker']), 'unpickling ran code'


@pytest.mark.dense  # a segmentation config
def test_test_tool_refuses_another_models_checkpoint(files, tmp_path):
    args = ['tools/test.py', SEG_DEMO, files['good'], '--work-dir',
            str(tmp_path), '--data-root', files['seg']]
    rc, out = run(*args)
    assert rc == 1, out[-3000:]
    assert 'does not fit EncoderDecoder' in out
    assert 'a training checkpoint of UMMAE' in out
    assert '--allow-partial' in out and 'Traceback' not in out
    rc, out = run(*args, '--allow-partial')
    assert rc == 0, out[-3000:]
    assert 'mIoU' in out


def test_figure_tool_refuses_another_models_checkpoint(files, tmp_path):
    rc, out = run('tools/visualize_reconstruction.py', MAE_DEMO,
                  files['good'], osp.join(files['images'], '0000.jpg'),
                  '--out', str(tmp_path / 'r.png'))
    assert rc == 1, out[-3000:]
    assert 'does not fit ReconstructingMAE' in out and 'UMMAE' in out
    assert not osp.exists(str(tmp_path / 'r.png'))


def test_loader_registration_is_explicit():
    code = ('import um_mae; from mmengine.runner import CheckpointLoader; '
            "print(CheckpointLoader._schemes[''].__module__); "
            'import um_mae.engine.checkpoint_loading; '
            "print(CheckpointLoader._schemes[''].__module__)")
    rc, out = run('-c', code)
    assert rc == 0, out
    assert out.split() == ['mmengine.runner.checkpoint',
                           'um_mae.engine.checkpoint']
