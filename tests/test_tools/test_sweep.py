# Copyright (c) um-mae contributors. All rights reserved.
"""tools/sweep.py: plan -> launch.sh -> collect, and Li et al.'s steps."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from um_mae.toolkit.demo_data import make_coco_shapes
from um_mae.toolkit.sweep import LR, WD, collect, plan

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GFL_DEMO = osp.join(REPO, 'configs', 'det', 'gfl',
                    'gfl_pvt-demo_fpn_1xb8-300it_demo-coco-128px.py')
VIT_B = osp.join(
    REPO, 'configs', 'det', 'mask_rcnn',
    'mask-rcnn_vit-base-p16_{}fpn-syncbn_32xb2-amp-lsj-1024-'
    '{}_coco.py')


@pytest.mark.slow
@pytest.mark.dense
def test_two_by_two_sweep_end_to_end(tmp_path):
    """Four two-iteration runs through launch.sh, then collect."""
    data = str(tmp_path / 'coco')
    make_coco_shapes(data, num_train=4, num_val=2)
    out = str(tmp_path / 'sweep')
    manifest = plan(
        GFL_DEMO, out, grid={
            LR: [1e-3, 2e-3],
            WD: [0.01, 0.05]
        }, iters=2)
    assert len(manifest['runs']) == 4
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PYTHONWARNINGS='ignore',
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            'bash',
            osp.join(out, 'launch.sh'), 'local', '--data-root', data,
            '--cfg-options', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'train_dataloader.batch_size=2', 'model.test_cfg.score_thr=0'
        ],  # boxes to score after 2 steps
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    result = collect(out)
    assert [r['status'] for r in result['rows']] == ['done'] * 4
    for run, row in zip(manifest['runs'], result['rows']):
        # each run trained with its values, read back from its own files
        cfg = Config.fromfile(run['config'])
        assert (cfg.optim_wrapper.optimizer.lr,
                cfg.optim_wrapper.optimizer.weight_decay) == \
            (run['values'][LR], run['values'][WD])
        assert cfg.train_cfg.max_iters == 2
        [scalars] = [
            osp.join(d, 'vis_data', 'scalars.json')
            for d in os.scandir(run['work_dir']) if d.is_dir()
        ]
        metric = [
            json.loads(line) for line in open(scalars)
            if 'coco/bbox_mAP' in line
        ][-1]['coco/bbox_mAP']
        assert row['metric'] == metric
    best = max(result['rows'], key=lambda r: r['metric'])
    assert result['best']['name'] == best['name']
    # a 2 x 2 grid has no interior: the protocol says expand
    assert set(result['boundary']) == {LR, WD}
    assert 'expand the search' in result['next']
    lines = open(result['csv']).read().splitlines()
    assert lines[0] == f'run,status,{LR},{WD},coco/bbox_mAP'
    assert len(lines) == 5
    assert open(result['figure'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'

    # a failed and a never-started run are listed, not dropped
    failed, missing = manifest['runs'][0], manifest['runs'][1]
    open(osp.join(failed['work_dir'], 'sweep_failed'), 'w').write('exit 1')
    os.rename(missing['work_dir'], missing['work_dir'] + '.moved')
    result = collect(out)
    assert dict(result['not_done']) == {
        failed['name']: 'failed',
        missing['name']: 'not started'
    }
    assert result['best']['name'] not in dict(result['not_done'])


@pytest.mark.dense
@pytest.mark.parametrize('arm,epochs', [('', 25), ('random-init_', 100)])
def test_lr_wd_step_is_li_et_al_step_one(tmp_path, arm, epochs):
    length = '400e' if arm else '100e'
    config = VIT_B.format(arm, length)
    manifest = plan(config, str(tmp_path), step='lr-wd')
    grid = {(r['values'][LR], r['values'][WD]) for r in manifest['runs']}
    assert grid == {(lr, wd)
                    for lr in (8e-5, 1.6e-4, 3.2e-4)
                    for wd in (0.05, 0.1, 0.2)}
    base = Config.fromfile(config)
    cfg = Config.fromfile(manifest['runs'][0]['config'])
    assert cfg.model.backbone.drop_path_rate == 0.0  # dp fixed at 0
    # Li et al. count COCO epochs; the config repeats COCO 4 times
    times = cfg.train_dataloader.dataset.times
    assert cfg.train_cfg.max_epochs * times == epochs
    assert cfg.param_scheduler[1].end == cfg.param_scheduler[1].T_max == \
        cfg.train_cfg.max_epochs
    assert cfg.param_scheduler[0] == base.param_scheduler[0]  # warm-up
    # everything else is the config's
    for key in ('optim_wrapper', 'model', 'train_cfg', 'param_scheduler',
                'pretrained', 'train_dataloader'):
        cfg.pop(key)
        base.pop(key)
    assert cfg.to_dict() == base.to_dict()


@pytest.mark.dense  # builds det / seg configs (mmdet / mmseg bases)
def test_bad_sweeps_are_refused(tmp_path):
    with pytest.raises(ValueError, match='is not a key of the config'):
        plan(
            GFL_DEMO,
            str(tmp_path),
            grid={'model.backbone.nope': [1]},
            iters=2)
    with pytest.raises(
            ValueError, match='iter-based: set the length with '
            '--iters'):
        plan(GFL_DEMO, str(tmp_path), grid={LR: [1e-3]}, epochs=2)
