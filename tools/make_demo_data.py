# Copyright (c) um-mae contributors. All rights reserved.
"""Generate the embedded demo datasets (nothing is downloaded).

    python tools/make_demo_data.py                 # the demos, in data/
    python tools/make_demo_data.py pretrain --root data
    python tools/make_demo_data.py imagenet coco2017 ade20k   # real layouts

Demo datasets (what the demo configs read):

* ``pretrain``: ``data/demo_images/`` - crops of scikit-image's photos.
* ``coco``: ``data/demo_coco/`` - shapes with boxes and polygon masks.
* ``seg``: ``data/demo_seg/`` - shapes with per-pixel labels (mmseg layout).

The same kind of content in the public datasets' own layouts, at the paths
the shipped recipes read, to try a recipe end to end before the real data
is there (a few images each; an existing non-empty folder is refused):

* ``imagenet``: ``data/imagenet/`` (``train/<wnid>/``, ``val/``, ``meta/``);
* ``coco2017``: ``data/coco/`` (``{train,val}2017/``, ``annotations/``, the
  80 COCO categories, ``stuffthingmaps/`` for HTC);
* ``ade20k``: ``data/ade/ADEChallengeData2016/`` (``images/``,
  ``annotations/``).
"""
import argparse
import functools
import os
import os.path as osp

from um_mae.toolkit.demo_data import (make_ade20k_layout, make_coco_layout,
                                      make_coco_shapes, make_imagenet_layout,
                                      make_pretrain_images, make_seg_shapes)

DEMOS = {
    'pretrain': ('demo_images', make_pretrain_images),
    'coco': ('demo_coco', make_coco_shapes),
    'seg': ('demo_seg', make_seg_shapes),
}
LAYOUTS = {
    'imagenet': ('imagenet', make_imagenet_layout),
    'coco2017': ('coco', functools.partial(make_coco_layout,
                                           stuff_maps=True)),
    'ade20k': ('ade/ADEChallengeData2016', make_ade20k_layout),
}
KINDS = {**DEMOS, **LAYOUTS}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'kinds',
        nargs='*',
        metavar='KIND',
        help=f'any of {", ".join(KINDS)}, or all (the demos; default)')
    parser.add_argument(
        '--root', default='data', help='parent folder (default: data)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args()


def main():
    args = parse_args()
    kinds = args.kinds or ['all']
    kinds = list(DEMOS) if 'all' in kinds else kinds
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f'error: unknown dataset {unknown}; choose from '
                         f'{", ".join(KINDS)} or all')
    for kind in kinds:
        folder, make = KINDS[kind]
        out = osp.join(args.root, folder)
        if kind in LAYOUTS and osp.isdir(out) and os.listdir(out):
            raise SystemExit(
                f'error: {out} exists and is not empty (your dataset?); '
                f'nothing written. Pass --root OTHER to write the {kind} '
                'layout elsewhere')
        make(out, seed=args.seed)
        print(f'wrote {kind} data to {out}')


if __name__ == '__main__':
    main()
