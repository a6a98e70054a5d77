# Copyright (c) um-mae contributors. All rights reserved.
"""Generate the embedded demo datasets (nothing is downloaded).

    python tools/make_demo_data.py                 # all of them, in data/
    python tools/make_demo_data.py pretrain --root data

* ``pretrain``: ``data/demo_images/`` - crops of scikit-image's photos.
* ``coco``: ``data/demo_coco/`` - shapes with boxes and polygon masks.
* ``seg``: ``data/demo_seg/`` - shapes with per-pixel labels (mmseg layout).
"""
import argparse
import os.path as osp

from um_mae.datasets.demo_data import (make_coco_shapes, make_pretrain_images,
                                       make_seg_shapes)

KINDS = {
    'pretrain': ('demo_images', make_pretrain_images),
    'coco': ('demo_coco', make_coco_shapes),
    'seg': ('demo_seg', make_seg_shapes),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'kinds',
        nargs='*',
        metavar='KIND',
        help=f'any of {", ".join(KINDS)} or all (default: all)')
    parser.add_argument(
        '--root', default='data', help='parent folder (default: data)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args()


def main():
    args = parse_args()
    kinds = args.kinds or ['all']
    kinds = list(KINDS) if 'all' in kinds else kinds
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f'unknown demo dataset {unknown}; choose from '
                         f'{", ".join(KINDS)} or all')
    for kind in kinds:
        folder, make = KINDS[kind]
        out = osp.join(args.root, folder)
        make(out, seed=args.seed)
        print(f'wrote {kind} demo data to {out}')


if __name__ == '__main__':
    main()
