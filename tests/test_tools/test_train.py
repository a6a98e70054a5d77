# Copyright (c) um-mae contributors. All rights reserved.
"""tools/train.py and tools/test.py on the three toolboxes' config types.

The tools run as subprocesses, the way a user starts them.
"""
import glob
import os
import os.path as osp
import pickle
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_tool

from um_mae.toolkit.demo_data import (make_coco_shapes, make_pretrain_images,
                                      make_seg_shapes)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
MAE_DEMO = osp.join(REPO, 'configs', 'pretrain', 'mae',
                    'mae_vit-tiny-p16_1xb8-10e_demo-128px.py')
DET_TINY = osp.join(REPO, 'tests', 'data', 'configs',
                    'gfl_pvt-demo_demo-coco.py')
SEG_TINY = osp.join(REPO, 'tests', 'data', 'configs',
                    'upernet_pvt-demo_demo-seg.py')
GFL_DEMO = osp.join(REPO, 'configs', 'det', 'gfl',
                    'gfl_pvt-demo_fpn_1xb8-300it_demo-coco-128px.py')


def last_log(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    assert logs, f'no log in {work_dir}'
    with open(logs[-1]) as f:
        return f.read()


@pytest.fixture(scope='module')
def pretrain_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_images')
    make_pretrain_images(str(root), num_images=16, size=128)
    return str(root)


@pytest.mark.slow
def test_train_mmpretrain_then_resume(pretrain_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    common = [
        MAE_DEMO, '--work-dir', work_dir, '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={pretrain_root}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1'
    ]
    rc, out = run_tool(TRAIN, *common, 'train_cfg.max_epochs=1')
    assert rc == 0, out
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    log = last_log(work_dir)
    assert 'eta:' in log and 'loss:' in log

    # torch >= 2.6 refuses this checkpoint with its default weights_only
    # load, which is what mmengine 0.10.7 uses: resume needs our loader.
    if torch.__version__ >= '2.6':
        with pytest.raises(pickle.UnpicklingError):
            torch.load(ckpt)

    # mmengine names a run's log folder by the second the run starts: a
    # forked run (no imports) can start in the second the first one did,
    # and would then write into that folder's log
    time.sleep(1 - time.time() % 1)
    rc, out = run_tool(TRAIN, *common, 'train_cfg.max_epochs=2', '--resume')
    assert rc == 0, out
    log = last_log(work_dir)
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [2][1/2]' in log
    assert 'Epoch(train) [1]' not in log
    state = torch.load(
        osp.join(work_dir, 'epoch_2.pth'), weights_only=False)
    assert state['meta']['epoch'] == 2 and state['meta']['iter'] == 4


#: warnings a clean run may print: mmengine's CheckpointHook (which ours
#: extends) builds a FileClient in every run, deprecated by mmengine itself
UPSTREAM_WARNINGS = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


def readme_quick_start():
    """The commands of the README's quick-start line, split at ``&&``."""
    with open(osp.join(REPO, 'README.md')) as f:
        blocks = f.read().split('```bash\n')[1:]
    for block in blocks:
        line = block.split('```')[0].strip()
        if line.startswith('bash tools/install.sh --pretrain-only'):
            return [part.strip() for part in line.split('&&')]
    raise AssertionError('README.md has no quick-start line')


def test_quick_start_runs_clean_and_a_rerun_says_done(tmp_path):
    """The README's quick start after its install: the demo data, then the
    UM-MAE demo (2 iterations of 32 images, with gradient accumulation as in
    the ImageNet recipes), with Python's warnings on: nothing warns but
    mmengine's own deprecations. Re-running the finished run with resume on
    (as the pre-training configs do) trains nothing and says so."""
    import re
    install, make_data, train = readme_quick_start()
    assert install == 'bash tools/install.sh --pretrain-only'
    env = dict(PYTHONWARNINGS='default')
    rc, out = run_tool(*make_data.split()[1:], 'pretrain', '--root',
                       str(tmp_path), env=env)
    assert rc == 0, out
    work_dir = str(tmp_path / 'work')
    args = [
        *train.split()[1:], '--work-dir', work_dir, '--data-root',
        str(tmp_path / 'demo_images'), '--cfg-options',
        'train_dataloader.batch_size=32', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
        'optim_wrapper.accumulative_counts=2'
    ]
    rc, out = run_tool(*args, env=env)
    assert rc == 0, out
    assert 'Epoch(train) [1][2/2]' in out
    ours = re.findall(r'.*/(?:um_mae|tools)/\S+\.py:\d+: \w*Warning.*', out)
    assert not ours, ours
    assert 'scheduler.step()' not in out
    logged = [
        line for line in out.splitlines()
        if re.search(r' - WARNING - |^warning: ', line)
        and not any(w in line for w in UPSTREAM_WARNINGS)
    ]
    assert not logged, logged

    rc, again = run_tool(*args, '--resume', env=env)
    assert rc == 0, again
    assert 'Epoch(train)' not in again
    assert (f'nothing to train: the run in {work_dir} is already complete '
            '(epoch 1 of 1; the config resumes the latest checkpoint of its '
            'work dir). To train again give another --work-dir, or delete '
            'its checkpoints and last_checkpoint') in again


def test_resume_from_explicit_checkpoint_requires_file(pretrain_root,
                                                       tmp_path):
    rc, out = run_tool(TRAIN, MAE_DEMO, '--work-dir', str(tmp_path),
                       '--resume', str(tmp_path / 'nope.pth'),
                       '--cfg-options', 'train_dataloader.dataset.dataset.'
                       f'data_root={pretrain_root}')
    assert rc != 0
    assert 'nope.pth' in out and 'does not exist' in out
    assert 'Traceback' not in out


@pytest.mark.slow
def test_smoke_trains_n_iterations_and_keeps_nothing(tmp_path):
    """``--smoke N`` on an epoch-based config with a dataset wrapper and a
    batch larger than the data: N iterations logged one by one, the batch
    clipped, no workers, the temporary work dir removed."""
    root = str(tmp_path / 'three_images')
    make_pretrain_images(root, num_images=3, size=128)
    rc, out = run_tool(TRAIN, MAE_DEMO, '--smoke', '2', '--data-root', root)
    assert rc == 0, out
    assert 'Iter(train) [1/2]' in out and 'Iter(train) [2/2]' in out, out
    assert 'Epoch(train)' not in out and 'Iter(train) [3/' not in out
    assert 'train batch 8 -> 3 (the data has 3 training samples)' in out
    assert 'num_workers=0' in out
    work_dir = out.split('removed the work dir ')[1].split(' ')[0]
    assert 'um_mae-smoke-' in work_dir and not osp.exists(work_dir)


def test_smoke_needs_a_positive_count(tmp_path):
    rc, out = run_tool(TRAIN, MAE_DEMO, '--smoke', '0', '--work-dir',
                       str(tmp_path))
    assert rc != 0
    assert "argument --smoke: '0': give the number of training iterations" \
        in out


@pytest.mark.slow
@pytest.mark.dense
def test_smoke_evaluates_once_at_the_end(tmp_path):
    """An iteration-based detector with a val loop: one iteration, one
    evaluation after it, the checkpoint kept in the given --work-dir."""
    data_root = str(tmp_path / 'data')
    make_coco_shapes(data_root, num_train=2, num_val=2)
    ann = osp.join(data_root, 'annotations', 'instances_val.json')
    work_dir = str(tmp_path / 'work')
    rc, out = run_tool(TRAIN, DET_TINY, '--smoke', '1', '--work-dir', work_dir,
                       '--cfg-options',
                       f'train_dataloader.dataset.data_root={data_root}',
                       f'val_dataloader.dataset.data_root={data_root}',
                       f'val_evaluator.ann_file={ann}',
                       'model.test_cfg.score_thr=0.0')
    assert rc == 0, out
    assert 'Iter(train) [1/1]' in out
    assert out.count('coco/bbox_mAP:') == 1, out[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth'))


@pytest.mark.slow
@pytest.mark.dense
@pytest.mark.parametrize('config,make,metric', [
    (DET_TINY, make_coco_shapes, 'coco/bbox_mAP'),
    (SEG_TINY, make_seg_shapes, 'mIoU'),
],
                         ids=['mmdet', 'mmseg'])
def test_train_and_test_dense(config, make, metric, tmp_path):
    data_root = str(tmp_path / 'data')
    make(data_root, num_train=8, num_val=4)
    work_dir = str(tmp_path / 'work')
    opts = [
        '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers='
        'False', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'train_cfg.max_iters=2'
    ]
    if 'coco' in config:
        ann = osp.join(data_root, 'annotations', 'instances_val.json')
        # an untrained model scores low: keep every box so COCO evaluates
        opts += [
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            'model.test_cfg.score_thr=0.0'
        ]
    rc, out = run_tool(TRAIN, config, '--work-dir', work_dir, *opts)
    assert rc == 0, out
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    out_file = str(tmp_path / 'metrics.json')
    rc, out = run_tool(TEST, config, ckpt, '--work-dir', work_dir, '--out',
                       out_file, *opts)
    assert rc == 0, out
    import json
    with open(out_file) as f:
        assert metric in json.load(f)


@pytest.mark.slow
@pytest.mark.dense
def test_gfl_demo_untrained_scores_nothing_and_test_py_says_so(tmp_path):
    """docs/transfer.md's GFL demo commands, trained for 1 iteration only:
    the detector keeps no box above its score threshold (its class prior is
    0.01 < 0.05), so mmdet's COCO metric logs an ERROR and returns ``{}``.
    tools/test.py says so in one line, writes no --out and exits 1."""
    data_root = str(tmp_path / 'demo_coco')
    make_coco_shapes(data_root, num_train=2, num_val=2)
    work_dir = str(tmp_path / 'work')
    common = [
        '--work-dir', work_dir, '--data-root', data_root, '--cfg-options',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]
    rc, out = run_tool(TRAIN, GFL_DEMO, *common, 'train_cfg.max_iters=1',
                       'train_dataloader.batch_size=2')
    assert rc == 0, out
    out_file = str(tmp_path / 'metrics.json')
    rc, out = run_tool(TEST, GFL_DEMO, osp.join(work_dir, 'iter_1.pth'),
                       '--out', out_file, *common)
    assert rc == 1, out
    assert 'Traceback' not in out
    assert out.strip().splitlines()[-2] == (
        'error: the evaluation scored nothing (CocoMetric returned no '
        'metric): no predicted box of any test image passed the score '
        'threshold (model.test_cfg.score_thr=0.05), as with an untrained or '
        'barely trained checkpoint; train longer, or add --cfg-options '
        'model.test_cfg.score_thr=0.0 to score every box')
    assert not osp.exists(out_file)


def test_missing_config():
    rc, out = run_tool(TRAIN, 'configs/does_not_exist.py')
    assert rc != 0
    assert "config file 'configs/does_not_exist.py' does not exist" in out
    assert 'Traceback' not in out


@pytest.mark.slow
def test_dist_test_launches_test_py(tmp_path):
    script = osp.join(REPO, 'tools', 'dist_test.sh')
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore',
               PORT='29531')
    proc = subprocess.run(['bash', script, 'a.py', 'b.pth'],
                          cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2
    assert 'usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS' in \
        proc.stderr
    # one process through torchrun reaches test.py with the config
    proc = subprocess.run(['bash', script, 'no_such_config.py', 'b.pth', '1'],
                          cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode != 0
    assert "config file 'no_such_config.py' does not exist" in \
        proc.stdout + proc.stderr


def test_unknown_launcher():
    rc, out = run_tool(TRAIN, MAE_DEMO, '--launcher', 'foo')
    assert rc != 0
    assert "unknown --launcher 'foo'" in out and 'pytorch' in out
    assert 'Traceback' not in out


def test_missing_data_root(tmp_path):
    rc, out = run_tool(TRAIN, MAE_DEMO, '--work-dir', str(tmp_path),
                       '--cfg-options', 'train_dataloader.dataset.dataset.'
                       'data_root=/no/such/dir')
    assert rc != 0
    assert "data root '/no/such/dir'" in out
    assert 'train_dataloader.dataset.dataset.data_root' in out
    assert 'Traceback' not in out


def test_demo_data_root_hint(tmp_path):
    # run from an empty folder: the demo's relative data root is missing
    rc, out = run_tool(TRAIN, MAE_DEMO, cwd=str(tmp_path))
    assert rc != 0
    assert 'python tools/make_demo_data.py' in out
    assert 'Traceback' not in out


@pytest.mark.dense
def test_toolbox_not_installed(tmp_path):
    # shadow mmdet with a package that cannot be imported
    fake = tmp_path / 'fake' / 'mmdet'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(
        "raise ImportError('No module named mmdet')\n")
    cfg = tmp_path / 'det.py'
    cfg.write_text("default_scope = 'mmdet'\nmodel = dict(type='GFL')\n")
    env = dict(PYTHONPATH=str(tmp_path / 'fake'))
    rc, out = run_tool(TRAIN, str(cfg), '--work-dir', str(tmp_path), env=env)
    assert rc != 0
    assert 'the config needs mmdet' in out
    assert 'bash tools/install.sh' in out and 'mmdet==3.3.0' in out
    assert 'Traceback' not in out


@pytest.mark.slow  # fresh interpreters
@pytest.mark.parametrize(
    'tool,config', [(TRAIN, DET_TINY), (TEST, SEG_TINY)],
    ids=['train-mmdet', 'test-mmseg'])
def test_dense_config_without_mmcv_ops(tool, config, env_without_mmcv_ops,
                                       tmp_path):
    args = [config] + (['ckpt.pth'] if tool == TEST else [])
    rc, out = run_tool(tool, *args, '--work-dir', str(tmp_path),
                       env=env_without_mmcv_ops)
    assert rc != 0 and 'Traceback' not in out
    # one line of ours (a host library may log warnings of its own first)
    errors = [line for line in out.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, out
    assert "configs cannot run here: mmcv's compiled ops are missing" in \
        errors[0]
    assert '`bash tools/install.sh --with-ops`' in errors[0]


@pytest.mark.dense
def test_out_indices_do_not_match_neck(tmp_path):
    # the demo PVT gives 32/64/128 channels for out_indices (1, 2, 3)
    rc, out = run_tool(TRAIN, DET_TINY, '--work-dir', str(tmp_path),
                       '--cfg-options', 'model.backbone.out_indices=[0,1,2]',
                       'train_dataloader.dataset.data_root=' + REPO)
    assert rc != 0
    assert 'model.backbone.out_indices=[0, 1, 2]' in out
    assert 'model.neck.in_channels=[32, 64, 128]' in out
    assert 'model.neck.in_channels=[16, 32, 64]' in out  # the fix
    assert 'Traceback' not in out


def test_bad_mask_ratio_is_one_clear_error(pretrain_root, tmp_path):
    cfg = tmp_path / 'bad_ratio.py'
    cfg.write_text(
        f"_base_ = ['{REPO}/configs/pretrain/ummae/"
        "ummae_pvt-demo_1xb8-10e_demo-128px.py']\n"
        "train_dataloader = dict(dataset=dict(dataset=dict(pipeline=[\n"
        "    dict(type='LoadImageFromFile'),\n"
        "    dict(type='UniformMaskGenerator', strategy='UM',\n"
        "         secondary_mask_ratio=1.5),\n"
        "    dict(type='PackInputs', algorithm_keys=['secondary_mask'])])))\n")
    rc, out = run_tool(TRAIN, str(cfg), '--work-dir', str(tmp_path / 'w'),
                       '--cfg-options',
                       f'train_dataloader.dataset.dataset.data_root='
                       f'{pretrain_root}')
    assert rc == 1
    assert 'error:' in out and '1.5' in out
    assert 'Traceback' not in out
    assert not any(f.endswith('.pth') for f in os.listdir(tmp_path / 'w'))


def test_image_size_incompatible_with_uniform_masking(pretrain_root,
                                                      tmp_path):
    rc, out = run_tool(
        TRAIN, osp.join(REPO, 'configs', 'pretrain', 'ummae',
                        'ummae_pvt-demo_1xb8-10e_demo-128px.py'),
        '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={pretrain_root}',
        'train_dataloader.dataset.dataset.pipeline.1.scale=112')
    assert rc == 1
    assert 'error:' in out and '112' in out
    assert 'Traceback' not in out


def test_corrupt_image_is_one_clear_error(tmp_path):
    root = tmp_path / 'images'
    paths = make_pretrain_images(str(root), num_images=8, size=128)
    with open(paths[3], 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated')
    rc, out = run_tool(
        TRAIN, osp.join(REPO, 'configs', 'pretrain', 'ummae',
                        'ummae_pvt-demo_1xb8-10e_demo-128px.py'),
        '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={root}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False')
    assert rc == 1
    assert f'cannot read image {paths[3]}' in out
    assert "on_error='skip'" in out
    assert 'Traceback' not in out


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_amp_without_gpu_is_one_clear_error(pretrain_root, tmp_path):
    rc, out = run_tool(TRAIN, MAE_DEMO, '--amp', '--work-dir', str(tmp_path),
                       '--cfg-options', 'train_dataloader.dataset.dataset.'
                       f'data_root={pretrain_root}')
    assert rc != 0
    assert '--amp needs a CUDA GPU' in out and 'Traceback' not in out


# -- shipped AMP recipes on CPU, SyncBN on CPU processes, batch-1 BN ---------
UMMAE_PVT_S = osp.join(REPO, 'configs', 'pretrain', 'ummae',
                       'ummae_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-'
                       '256px.py')
SEG_DEMO = osp.join(REPO, 'configs', 'seg', 'upernet',
                    'pvt-demo_upernet_1xb4-1600it_demo-seg-128px.py')
GFL_DEMO = osp.join(REPO, 'configs', 'det', 'gfl',
                    'gfl_pvt-demo_fpn_1xb8-300it_demo-coco-128px.py')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_amp_config_on_cpu_names_fp32(tmp_path):
    rc, out = run_tool(TRAIN, UMMAE_PVT_S, '--work-dir', str(tmp_path),
                       '--data-root', str(tmp_path))
    assert rc != 0
    assert 'AmpOptimWrapper' in out and 'add --fp32' in out
    assert 'Traceback' not in out
    rc, out = run_tool(TRAIN, UMMAE_PVT_S, '--amp', '--fp32')
    assert rc == 2 and 'not allowed with argument' in out


def test_fp32_keeps_every_option_but_amp_ones():
    from mmengine.config import Config

    from um_mae.toolkit.cli import to_fp32
    cfg = Config.fromfile(UMMAE_PVT_S)
    before = cfg.optim_wrapper.to_dict()
    to_fp32(cfg)
    after = cfg.optim_wrapper.to_dict()
    assert after.pop('type') == 'OptimWrapper'
    assert before.pop('type') == 'AmpOptimWrapper'
    assert before.pop('loss_scale') == 'dynamic'
    assert after == before  # accumulation, clipping, paramwise settings


@pytest.mark.dense
def test_batch_one_batchnorm_is_one_clear_error(tmp_path):
    data_root = str(tmp_path / 'seg')
    make_seg_shapes(data_root, num_train=2, num_val=1)
    rc, out = run_tool(TRAIN, SEG_DEMO, '--work-dir', str(tmp_path / 'w'),
                       '--data-root', data_root, '--cfg-options',
                       'train_dataloader.batch_size=1',
                       'train_dataloader.num_workers=0',
                       'train_dataloader.persistent_workers=False')
    assert rc == 1
    assert 'train_dataloader.batch_size >= 2 per process' in out
    assert 'Traceback' not in out


@pytest.mark.dense
@pytest.mark.slow
def test_dist_train_with_syncbn_on_cpu(tmp_path):
    data_root = str(tmp_path / 'coco')
    make_coco_shapes(data_root, num_train=4, num_val=2)
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore',
               PORT='29537', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', GFL_DEMO, '2', '--work-dir',
         str(tmp_path / 'w'), '--data-root', data_root, '--cfg-options',
         'model.neck.norm_cfg.type=SyncBN', 'train_cfg.max_iters=2',
         'train_cfg.val_interval=100', 'train_dataloader.batch_size=2',
         'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'SyncBN layers of the config run as per-process BN' in out
    assert osp.isfile(osp.join(str(tmp_path / 'w'), 'iter_2.pth'))
