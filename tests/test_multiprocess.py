# Copyright (c) um-mae contributors. All rights reserved.
"""Two processes (gloo) train every pre-training and fine-tuning config and
one config of each detection / segmentation family.

What breaks first on several GPUs: a parameter that gets no gradient in
some step (DDP stops in the next one: "Expected to have finished
reduction in the prior iteration"), ranks that drift apart, a log that
shows one rank's loss. Each selected config (a new pre-training or
fine-tuning config, or a new family folder under ``configs/det`` /
``configs/seg``, is picked up by the globs) trains 3 iterations in 2
processes, batch 2 per process, with its own ``find_unused_parameters``,
on generated data in the public layouts, with the backbone's tiny arch
and smaller images (:mod:`um_mae.toolkit.tiny_config`). Afterwards the
parameters are bit-identical on both ranks and every logged loss is the
mean of the two ranks' own losses.

All configs run in one 2-process job started through the launcher
(``tools/torchrun.sh``, which ``tools/dist_train.sh`` runs): each process
builds every config with ``tools/train.py``'s code and ``Runner.from_cfg``
(``tests/dist_configs_worker.py``), so start-up and imports are paid once.
``tools/dist_train.sh`` itself is run by ``test_reproducibility.py``.

Configs that are the same at the tiny size but for their schedule
(``param_scheduler``, ``train_cfg``, ``auto_scale_lr``: e.g. the 200- and
800-epoch recipes of one backbone, the fine-tuning arms of one backbone)
share one run: DDP sees the same model, wrapper, optimizer and data.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from um_mae.toolkit.tiny_config import (config_task, load_config,
                                        shrink_config, shrink_pipeline)

# trainings of every config
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _configs(folder):
    return sorted(
        p for p in glob.glob(
            osp.join(REPO, 'configs', folder, '**', '*.py'), recursive=True)
        if '_base_' not in p)


def _one_per_family(task):
    """The first non-demo config of each folder under configs/<task>/
    whose backbone trains (not a frozen first stage)."""
    picked = []
    for family in sorted(glob.glob(osp.join(REPO, 'configs', task, '*'))):
        if osp.basename(family) == '_base_':
            continue
        for path in _configs(osp.relpath(family, osp.join(REPO, 'configs'))):
            if 'demo' not in osp.basename(path) and 'frozen' not in path:
                picked.append(path)
                break
    return picked


CONFIGS = (
    _configs('pretrain') + _configs('finetune') + _one_per_family('det') +
    _one_per_family('seg'))
IDS = [osp.relpath(p, osp.join(REPO, 'configs')) for p in CONFIGS]
SIZES = dict(pretrain=128, cls=64, det=96, seg=64)
ITERS = 3
NPROC = 2


def test_families_found():
    names = ' '.join(IDS)
    for part in ('pretrain/ummae/', 'pretrain/simmim/', 'pretrain/mae/',
                 'finetune/', 'det/gfl/', 'det/mask_rcnn/', 'det/htc/',
                 'det/faster_rcnn/', 'seg/upernet/'):
        assert part in names


#: the keys that only schedule a run (3 iterations here)
SCHEDULE_KEYS = ('param_scheduler', 'train_cfg', 'auto_scale_lr')


def _tiny_config(path: str):
    """The config at the tiny size and what DDP sees of it (the config
    without its schedule)."""
    cfg = load_config(path)
    size = SIZES[config_task(cfg)]
    shrink_pipeline(cfg, size)
    shrink_config(cfg, size)
    # no checkpoint to start from (the backbone's init_cfg is dropped too)
    cfg.pretrained = None
    cfg.load_from = None
    seen = cfg.to_dict()
    for key in SCHEDULE_KEYS:
        seen.pop(key, None)
    return cfg, repr(seen)


def _job(path: str, tiny: str, data_root: str, work_dir: str) -> dict:
    cfg = load_config(path)
    opts = [
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=100000',
        'default_hooks.checkpoint.save_last=False'
    ]
    if cfg.train_cfg.get('max_iters') is not None:
        # mmengine also validates after the last iteration unless val_begin
        # is beyond it
        opts += [
            f'train_cfg.max_iters={ITERS}', 'train_cfg.val_interval=1000',
            'train_cfg.val_begin=1000'
        ]
    else:  # the generated ImageNet / COCO sets make 1 iteration per epoch
        opts += [f'train_cfg.max_epochs={ITERS}', 'train_cfg.val_begin=1000']
    if cfg.train_dataloader.dataset.type == 'RepeatDataset':
        opts.append('train_dataloader.dataset.times=1')
    return dict(
        name=osp.relpath(path, osp.join(REPO, 'configs')),
        args=[
            tiny, '--launcher', 'pytorch', '--fp32', '--work-dir', work_dir,
            '--data-root', data_root, '--cfg-options', *opts
        ])


@pytest.fixture(scope='module')
def dist_results(request, tmp_path_factory):
    """The runs of the selected tests' configs, in one 2-process job."""
    root = tmp_path_factory.mktemp('dist')
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PYTHONWARNINGS='ignore',
        OMP_NUM_THREADS='1',
        PORT='29547')
    # the public layouts (tools/make_demo_data.py's), 4 training images
    # each: one batch of 2 per process and epoch
    from um_mae.toolkit.demo_data import (make_ade20k_layout, make_coco_layout,
                                          make_imagenet_layout)
    roots = dict(
        mmpretrain=str(root / 'imagenet'),
        mmdet=str(root / 'coco'),
        mmseg=str(root / 'ade' / 'ADEChallengeData2016'))
    make_imagenet_layout(roots['mmpretrain'], images_per_class=2)
    from conftest import _dense_stack_error
    selected = [
        item.callspec.params['path'] for item in request.session.items
        if item.originalname == 'test_two_processes_stay_in_step'
    ]
    jobs, runs = [], {}  # runs: config -> the config whose run it shares
    first = {}  # what DDP sees -> the first config with it
    for path in selected:
        if '/configs/pretrain/' not in path and '/configs/finetune/' \
                not in path and _dense_stack_error():
            continue  # their tests are skipped (marked dense by conftest)
        scope = load_config(path).default_scope
        # the dense layouts need mmdet (COCO's class names): only for them
        if scope != 'mmpretrain' and not osp.isdir(roots['mmdet']):
            make_coco_layout(roots['mmdet'], num_train=4, stuff_maps=True)
            make_ade20k_layout(roots['mmseg'], num_train=4)
        cfg, seen = _tiny_config(path)
        name = osp.relpath(path, osp.join(REPO, 'configs'))
        runs[name] = first.setdefault(seen, name)
        if runs[name] != name:
            continue
        folder = root / f'cfg{len(jobs)}'
        folder.mkdir()
        tiny = osp.join(str(folder), osp.basename(path))
        cfg.dump(tiny)
        jobs.append(_job(path, tiny, roots[scope], str(folder / 'work')))
    jobs_file, out_file = str(root / 'jobs.json'), str(root / 'out.json')
    with open(jobs_file, 'w') as f:
        json.dump(jobs, f)
    proc = subprocess.run([
        'bash', 'tools/torchrun.sh',
        str(NPROC), 'tests/dist_configs_worker.py', jobs_file, out_file
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=1500)
    assert osp.exists(out_file), proc.stdout[-3000:] + proc.stderr[-5000:]
    with open(out_file) as f:
        results = json.load(f)
    return {name: results[run]
            for name, run in runs.items() if run in results}, \
        proc.stdout + proc.stderr


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_two_processes_stay_in_step(path, dist_results):
    results, output = dist_results
    name = osp.relpath(path, osp.join(REPO, 'configs'))
    assert name in results, output[-5000:]
    result = results[name]
    assert 'error' not in result, result.get('traceback')
    assert result['wrapper'] == 'MMDistributedDataParallel'
    # the config states what its model needs
    assert result['find_unused_parameters'] is not None
    assert result['identical'], 'the ranks hold different parameters'
    own = result['rank_losses']  # the demos' data make more iterations
    assert len(own) == NPROC and len(own[0]) == len(own[1]) >= ITERS
    assert own[0] != own[1], 'the ranks trained on the same images'
    means = [sum(r[i] for r in own) / NPROC for i in range(len(own[0]))]
    assert result['logged'] == pytest.approx(means, rel=1e-5)
