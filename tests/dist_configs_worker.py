# Copyright (c) um-mae contributors. All rights reserved.
"""Train several configs in one group of processes (tests only).

    bash tools/torchrun.sh 2 tests/dist_configs_worker.py JOBS.json OUT.json

Started once by ``tests/test_multiprocess.py`` through the launcher
(``tools/torchrun.sh``, which ``tools/dist_train.sh`` runs), so that the
process start-up and imports are paid once for all configs. Each job is
what ``tools/dist_train.sh CONFIG 2 ARGS`` runs in each process:
``tools/train.py``'s ``build_config`` (``--launcher pytorch``: gloo on
CPU, the config's ``find_unused_parameters``) and ``Runner.from_cfg`` ->
``train()``, inside ``config_text_once`` as in ``tools/train.py``. After
each job rank 0 writes what the test checks: whether the parameters are
bit-identical on all ranks, every rank's own loss of
each iteration and the loss the run logged (``train/loss`` of the message
hub); or the error.
"""
import json
import os.path as osp
import sys
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))


def _own_losses(runner, store: list) -> None:
    """Record this rank's loss of each step before any hook averages it."""
    model = runner.model
    train_step = model.train_step

    def recording(*args, **kwargs):
        log_vars = train_step(*args, **kwargs)
        store.append(float(log_vars['loss']))
        return log_vars

    model.train_step = recording


def _params_identical(model) -> bool:
    import torch
    import torch.distributed as dist
    flat = torch.cat(
        [p.detach().reshape(-1).double() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def run_job(job: dict) -> dict:
    import torch
    import torch.distributed as dist
    import train as train_tool
    from mmengine.runner import Runner

    from um_mae.toolkit.cli import config_text_once
    with config_text_once():  # as tools/train.py's main
        cfg = train_tool.build_config(train_tool.parse_args(job['args']))
        runner = Runner.from_cfg(cfg)
        own = []
        _own_losses(runner, own)
        runner.train()
    losses = torch.tensor(own, dtype=torch.float64)
    gathered = [torch.empty_like(losses) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, losses)
    logged = runner.message_hub.get_scalar('train/loss').data[0]
    return dict(
        find_unused_parameters=cfg.get('find_unused_parameters'),
        wrapper=type(runner.model).__name__,
        identical=_params_identical(runner.model),
        rank_losses=[g.tolist() for g in gathered],
        logged=[float(v) for v in logged])


def main() -> None:
    import metafile_cache  # this file's folder is on sys.path
    import torch.distributed as dist
    from tool_server import freeze_imports, import_toolboxes
    import_toolboxes()
    metafile_cache.install()
    freeze_imports()
    jobs_file, out_file = sys.argv[1:3]
    with open(jobs_file) as f:
        jobs = json.load(f)
    results = {}
    for job in jobs:
        try:
            results[job['name']] = run_job(job)
        except Exception as e:  # noqa: BLE001 - reported to the test
            results[job['name']] = dict(
                error=f'{type(e).__name__}: {e}',
                traceback=traceback.format_exc()[-3000:])
        if dist.get_rank() == 0:
            with open(out_file, 'w') as f:
                json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
