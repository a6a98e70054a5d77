# Copyright (c) um-mae contributors. All rights reserved.
"""One image under the RS, GS, US and UM sampling strategies (a PNG).

    python tools/visualize_masks.py [IMAGE] [--size 256] [--seed 0]
        [--out docs/mask_strategies.png]

Dropped tokens are grey; in UM, the kept tokens replaced by the learnable
token (secondary masking) are tinted blue. Without IMAGE, scikit-image's
astronaut photo is used.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Show one image under each token sampling strategy')
    parser.add_argument(
        'image', nargs='?', help='image file (default: a bundled photo)')
    parser.add_argument(
        '--size',
        type=int,
        default=256,
        help='side the image is resized to (multiple of 32)')
    parser.add_argument('--seed', type=int, default=0, help='mask seed')
    parser.add_argument(
        '--strategies',
        nargs='+',
        default=['RS', 'GS', 'US', 'UM'],
        help='sampling strategies, in order')
    parser.add_argument('--out', default='mask_strategies.png')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from um_mae.toolkit.cli import FIGURE_FORMATS, UsageError, check_out_file
    from um_mae.toolkit.visualization import (image_grid, load_square_rgb,
                                              paint_masks,
                                              sample_strategy_masks)
    try:
        check_out_file(args.out, FIGURE_FORMATS)
        img = load_square_rgb(args.image, args.size)
        masks = sample_strategy_masks(args.size, args.strategies, args.seed)
    except (ValueError, UsageError) as e:
        sys.exit(f'error: {e}')
    row = [img] + [paint_masks(img, *masks[s]) for s in args.strategies]
    labels = ['original'] + list(args.strategies)
    grid = image_grid([row], col_labels=labels)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    grid.save(args.out, optimize=True)
    print(f'written {args.out} ({grid.size[0]}x{grid.size[1]})')


if __name__ == '__main__':
    main()
