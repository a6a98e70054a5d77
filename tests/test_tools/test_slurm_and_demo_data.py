# Copyright (c) um-mae contributors. All rights reserved.
"""tools/slurm_train.sh (with a recording ``srun``) and the kinds and
refusals of tools/make_demo_data.py."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

SRUN = '''#!/usr/bin/env bash
# records its arguments, one per line, and the PYTHONPATH it was given
printf '%s\\n' "$@" > "$SRUN_RECORD"
printf '%s\\n' "$PYTHONPATH" > "$SRUN_RECORD.pythonpath"
'''


def test_slurm_train_passes_the_job_to_srun(tmp_path):
    """The srun command line, argument by argument, as the script's usage
    promises (planted bugs caught: ``--ntasks`` given the GPUs per node;
    the extra train.py arguments dropped)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(SRUN)
    srun.chmod(0o755)
    record = tmp_path / 'args'
    env = dict(
        os.environ,
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        SRUN_RECORD=str(record),
        GPUS='16',
        GPUS_PER_NODE='4',
        CPUS_PER_TASK='3',
        SRUN_ARGS='--time=1:00:00 --quotatype=auto',
        PYTHON='python3.11')
    proc = subprocess.run([
        'bash', 'tools/slurm_train.sh', 'gpu', 'ummae-pvt', 'configs/x.py',
        'work_dirs/x', '--resume', '--cfg-options', 'a=1'
    ],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    tools = osp.join('tools', '..')
    assert record.read_text().splitlines() == [
        '-p', 'gpu', '--job-name=ummae-pvt', '--gres=gpu:4', '--ntasks=16',
        '--ntasks-per-node=4', '--cpus-per-task=3', '--kill-on-bad-exit=1',
        '--time=1:00:00', '--quotatype=auto', 'python3.11', '-u',
        osp.join('tools',
                 'train.py'), 'configs/x.py', '--work-dir=work_dirs/x',
        '--launcher', 'slurm', '--resume', '--cfg-options', 'a=1'
    ]
    # the repository comes first on the PYTHONPATH of every task
    pythonpath = (tmp_path / 'args.pythonpath').read_text().strip()
    assert pythonpath.split(os.pathsep)[0] == tools

    # fewer than four arguments: the usage, and srun never runs
    record.unlink()
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'job'],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 2 and 'usage: bash tools/slurm_train.sh' in \
        proc.stderr
    assert not record.exists()


def _tool():
    spec = importlib.util.spec_from_file_location(
        'make_demo_data', osp.join(REPO_ROOT, 'tools', 'make_demo_data.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_demo_data_default_kinds(tmp_path, monkeypatch):
    """No kind (or ``all``) writes the three demos, each to its folder
    under --root, and none of the public layouts (writers replaced by
    recorders: the real ones take half a minute here)."""
    tool = _tool()
    for kinds in ([], ['all']):
        written = []
        for table in (tool.DEMOS, tool.LAYOUTS):
            for kind, (folder, _) in list(table.items()):
                table[kind] = (folder,
                               lambda out, seed, kind=kind: written.append(
                                   (kind, out, seed)))
        tool.KINDS.update({**tool.DEMOS, **tool.LAYOUTS})
        monkeypatch.setattr(sys, 'argv', [
            'make_demo_data.py', *kinds, '--root',
            str(tmp_path), '--seed', '3'
        ])
        tool.main()
        assert written == [
            ('pretrain', osp.join(str(tmp_path), 'demo_images'), 3),
            ('coco', osp.join(str(tmp_path), 'demo_coco'), 3),
            ('seg', osp.join(str(tmp_path), 'demo_seg'), 3),
        ]


@pytest.mark.parametrize('kind, folder',
                         [('imagenet', 'imagenet'), ('coco2017', 'coco'),
                          ('ade20k', 'ade/ADEChallengeData2016')])
def test_make_demo_data_refuses_a_non_empty_folder(tmp_path, monkeypatch, kind,
                                                   folder):
    """A public layout never writes into a folder that holds something
    (your dataset?): a one-line error, nothing written (planted: the
    check removed)."""
    mine = tmp_path / folder / 'mine.txt'
    mine.parent.mkdir(parents=True)
    mine.write_text('my data')
    monkeypatch.setattr(sys, 'argv',
                        ['make_demo_data.py', kind, '--root',
                         str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        _tool().main()
    assert str(e.value).startswith(
        f'error: {tmp_path / folder} exists and is not empty')
    assert os.listdir(tmp_path / folder) == ['mine.txt']
    assert mine.read_text() == 'my data'
