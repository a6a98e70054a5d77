# Copyright (c) um-mae contributors. All rights reserved.
"""Evaluate a checkpoint with an mmpretrain, mmdet or mmseg config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--allow-partial] [--data-root DIR] [--cfg-options k=v ...]
        [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from um_mae.engine.checkpoint import (  # noqa: E402
    check_model_checkpoint, register_checkpoint_loader)
from um_mae.models.converters import read_checkpoint  # noqa: E402
from um_mae.toolkit.cli import (UsageError, add_common_args,  # noqa: E402
                                check_data_roots, check_out_file,
                                check_toolbox, check_writable_dir,
                                config_text_once, load_config,
                                setup_distributed, user_errors, write_out_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='write the metrics to this file (.json / .yaml / .pkl); '
        'checked before the evaluation runs')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='evaluate even if the checkpoint does not hold exactly the '
        'model\'s tensors (by default such a checkpoint is refused)')
    add_common_args(parser)
    return parser.parse_args(argv)


def _find_key(cfg, key: str, prefix: str = 'model'):
    """The dotted path and value of the first ``key`` under ``cfg``."""
    if isinstance(cfg, dict):
        if key in cfg:
            return f'{prefix}.{key}', cfg[key]
        for name, value in cfg.items():
            found = _find_key(value, key, f'{prefix}.{name}')
            if found:
                return found
    return None


def check_metrics(metrics: dict, cfg) -> None:
    """Refuse an evaluation that scored nothing.

    mmdet's COCO metric logs an ERROR and returns ``{}`` when no box of any
    test image passed the score threshold (an untrained or barely trained
    detector); the test would otherwise end with exit code 0.

    Raises:
        UsageError: Naming the evaluator and, for detectors, the threshold.
    """
    if metrics:
        return
    evaluator = cfg.get('test_evaluator')
    names = ', '.join(
        str(e.get('type'))
        for e in (evaluator if isinstance(evaluator, (list,
                                                      tuple)) else [evaluator])
        if isinstance(e, dict)) or 'the evaluator'
    msg = f'the evaluation scored nothing ({names} returned no metric)'
    threshold = _find_key(
        cfg.model.get('test_cfg'), 'score_thr', 'model.test_cfg')
    if threshold:
        key, value = threshold
        msg += (f': no predicted box of any test image passed the score '
                f'threshold ({key}={value}), as with an untrained or '
                f'barely trained checkpoint; train longer, or add '
                f'--cfg-options {key}=0.0 to score every box')
    raise UsageError(msg)


def main(argv=None):
    args = parse_args(argv)
    with user_errors(), config_text_once():
        cfg = load_config(args.config, args.cfg_options, args.launcher,
                          args.work_dir, args.data_root)
        check_toolbox(cfg)
        register_checkpoint_loader()
        check_data_roots(cfg, ['test_dataloader'])
        check_writable_dir(cfg.work_dir)
        if args.out:
            check_out_file(args.out)
        if not cfg.get('test_dataloader'):
            raise UsageError(f'{args.config} has no test_dataloader to '
                             'evaluate (self-supervised pre-training configs '
                             'have none): use a fine-tuning or dense config')
        checkpoint = read_checkpoint(args.checkpoint)
        cfg.load_from = args.checkpoint
        setup_distributed(cfg)

        from mmengine.registry import RUNNERS
        from mmengine.runner import Runner
        runner = RUNNERS.build(
            cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        check_model_checkpoint(runner.model, checkpoint, args.checkpoint,
                               args.allow_partial)
        del checkpoint
        metrics = runner.test()
        check_metrics(metrics, cfg)
        if args.out:
            write_out_file(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
