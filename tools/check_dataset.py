# Copyright (c) um-mae contributors. All rights reserved.
"""Find data problems before training passes over them in silence.

    python tools/check_dataset.py CONFIG [--data-root DIR] [--headers-only]
    python tools/check_dataset.py coco ANN_FILE [IMG_DIR] [--classes A B]
    python tools/check_dataset.py seg IMG_DIR ANN_DIR --num-classes N
        [--img-suffix .jpg] [--seg-map-suffix .png] [--reduce-zero-label]
    python tools/check_dataset.py images DIR [--headers-only]

With a config, every dataset of its train / val / test loaders is checked
as the config reads it: the annotation file or image list it names
(ImageNet's ``meta/train.txt``), else its folder. Every image is decoded
completely (``--headers-only`` reads headers only: faster, but a truncated
image passes). Reported (with counts and examples): COCO annotations mmdet
drops (empty, negative, outside or non-finite boxes, unknown categories),
images skipped in training or trained as background only, a COCO file with
no usable annotation (training stops on it), listed, missing or unreadable
images; segmentation label maps that are colour-coded, of
another size than their image, or hold values that are no class; dangling
symbolic links and link loops; 16-bit images; empty folders. Exit code 0
when nothing is found, 1 when problems are found or the input cannot be
read (``error: ...``), 2 for bad arguments.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from um_mae.toolkit.checks import (check_coco,  # noqa: E402
                                   check_dataset_config, check_image_folder,
                                   check_seg_folders)
from um_mae.toolkit.cli import (UsageError, check_toolbox,  # noqa: E402
                                load_config, user_errors)

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def parse_args(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[-1])
    mode = argv[0] if argv else ''
    if mode == 'coco':
        parser.add_argument('mode')
        parser.add_argument('ann_file')
        parser.add_argument('img_dir', nargs='?')
        parser.add_argument('--classes', nargs='+')
    elif mode == 'seg':
        parser.add_argument('mode')
        parser.add_argument('img_dir')
        parser.add_argument('ann_dir')
        parser.add_argument('--num-classes', type=int, required=True)
        parser.add_argument('--img-suffix', default='.jpg')
        parser.add_argument('--seg-map-suffix', default='.png')
        parser.add_argument('--reduce-zero-label', action='store_true')
    elif mode == 'images':
        parser.add_argument('mode')
        parser.add_argument('folder')
        _add_headers_only(parser)
    else:
        parser.add_argument('config', help='a config file, or a mode: coco, '
                            'seg, images')
        parser.add_argument('--data-root', metavar='DIR')
        _add_headers_only(parser)
    return parser.parse_args(argv)


def _add_headers_only(parser) -> None:
    parser.add_argument(
        '--headers-only',
        dest='full',
        action='store_false',
        help='read only the image headers (faster; a truncated image then '
        'passes). By default every image is decoded completely')
    # --full was the opt-in before decoding became the default
    parser.add_argument('--full', action='store_true', help=argparse.SUPPRESS)


def min_usable_fraction(cfg) -> float:
    """``DataSummaryHook``'s threshold as the config declares it."""
    for hook in cfg.get('custom_hooks') or []:
        if isinstance(hook, dict) and 'DataSummaryHook' in str(
                hook.get('type')):
            return float(hook.get('min_usable_fraction', 0.0))
    return 0.0


def reports_for(args):
    mode = getattr(args, 'mode', None)
    if mode == 'coco':
        return [check_coco(args.ann_file, args.img_dir, args.classes)]
    if mode == 'seg':
        return [
            check_seg_folders(args.img_dir, args.ann_dir, args.num_classes,
                              args.img_suffix, args.seg_map_suffix,
                              args.reduce_zero_label)
        ]
    if mode == 'images':
        return [check_image_folder(args.folder, full=args.full)]
    cfg = load_config(args.config, data_root=args.data_root)
    scope = check_toolbox(cfg)
    reports, seen = [], set()
    for loader in LOADERS:
        ds = (cfg.get(loader) or {}).get('dataset')
        if not isinstance(ds, dict):
            continue
        for report in check_dataset_config(ds.to_dict(), scope, args.full,
                                           min_usable_fraction(cfg)):
            if report.name not in seen:
                seen.add(report.name)
                report.name = f'{loader}: {report.name}'
                reports.append(report)
    if not reports:
        raise UsageError(f'{args.config} has no dataset to check')
    return reports


def main(argv=None) -> int:
    args = parse_args(argv)
    with user_errors():
        reports = reports_for(args)
    for report in reports:
        print(report)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == '__main__':
    sys.exit(main())
