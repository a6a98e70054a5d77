# Copyright (c) um-mae contributors. All rights reserved.
"""Train with an mmpretrain, mmdet or mmseg config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
        [--amp | --fp32] [--auto-scale-lr] [--cfg-options k=v ...]
        [--launcher pytorch] [--smoke N]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from um_mae.engine.checkpoint import (  # noqa: E402
    check_last_checkpoint, check_resume_checkpoint, register_checkpoint_loader)
from um_mae.toolkit.cli import (UsageError, add_common_args,  # noqa: E402
                                apply_smoke, check_data_roots,
                                check_model_channels, check_runtime_hooks,
                                check_toolbox, check_writable_dir,
                                config_text_once, load_config,
                                setup_distributed, to_fp32, user_errors)


def _iterations(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f'{text!r}: give the number of training iterations, at least 1 '
            '(e.g. --smoke 2)')
    return int(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work '
        'dir when no path is given')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision (AmpOptimWrapper, fp16 with dynamic loss '
        'scaling; needs a CUDA GPU)')
    precision.add_argument(
        '--fp32',
        action='store_true',
        help='train in float32 with a plain OptimWrapper even if the config '
        'uses AMP (the way to run AMP configs on a CPU); the AMP-only '
        'options (loss_scale, dtype) are dropped')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual batch over auto_scale_lr.'
        'base_batch_size')
    parser.add_argument(
        '--smoke',
        type=_iterations,
        metavar='N',
        help='trial run: N iterations of the config\'s model and pipeline '
        '(any loop; batch clipped to the data, no workers, a log line per '
        'iteration, one evaluation at the end); its work dir is a '
        'temporary folder, removed afterwards, unless --work-dir is given')
    add_common_args(parser)
    return parser.parse_args(argv)


def build_config(args):
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir, args.data_root)
    check_toolbox(cfg)
    register_checkpoint_loader()
    check_data_roots(cfg, ['train_dataloader'])
    if args.smoke is not None:
        if args.work_dir is None:  # nothing kept unless asked
            import tempfile
            cfg.work_dir = tempfile.mkdtemp(prefix='um_mae-smoke-')
        for change in apply_smoke(cfg, args.smoke):
            print(f'--smoke: {change}', file=sys.stderr)
    check_writable_dir(cfg.work_dir)
    import torch
    if args.amp:
        if not torch.cuda.is_available():
            raise UsageError('--amp needs a CUDA GPU (mmengine\'s '
                             'AmpOptimWrapper); on CPU run without --amp')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    elif args.fp32:
        to_fp32(cfg)
    elif ('AmpOptimWrapper' in str(cfg.optim_wrapper.get('type'))
          and not torch.cuda.is_available()):
        raise UsageError(
            'the config trains with AmpOptimWrapper (fp16 mixed precision), '
            'which needs a CUDA GPU; on CPU add --fp32 to train in float32')
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise UsageError('--auto-scale-lr needs auto_scale_lr = dict('
                             'base_batch_size=N) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise UsageError(f'--resume {args.resume!r} does not exist; '
                             'give a checkpoint file or no path to resume '
                             'from the latest one in the work dir')
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('resume'):  # refuse a checkpoint that cannot be resumed
        if cfg.get('load_from'):
            check_resume_checkpoint(cfg.load_from)
        else:
            check_last_checkpoint(cfg.work_dir)
    check_runtime_hooks(cfg)
    setup_distributed(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with user_errors(), config_text_once():
        cfg = build_config(args)
        try:
            from mmengine.registry import RUNNERS
            from mmengine.runner import Runner
            if 'runner_type' in cfg:
                runner = RUNNERS.build(cfg)
            else:
                runner = Runner.from_cfg(cfg)
            check_model_channels(runner.model, cfg)
            runner.train()
        finally:
            if args.smoke is not None and args.work_dir is None:
                import shutil
                shutil.rmtree(cfg.work_dir, ignore_errors=True)
                print(
                    f'--smoke: removed the work dir {cfg.work_dir} (keep '
                    'it with --work-dir)',
                    file=sys.stderr)


if __name__ == '__main__':
    main()
