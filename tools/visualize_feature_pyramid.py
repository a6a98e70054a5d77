# Copyright (c) um-mae contributors. All rights reserved.
"""Feature-pyramid maps of one image under a detector or segmentor (a PNG).

    python tools/visualize_feature_pyramid.py CONFIG CHECKPOINT IMAGE
        [--out pyramid.png] [--tile 192]

One row per step of the model's feature path: the backbone's maps, then
each neck module's (e.g. ``ViTSimplePyramid``: strides 4 - 32 from the last
ViT block; then the FPN with its pooled stride-64 level). The first column
is the network input (the image after the config's test pipeline: resized,
padded); each further tile is one map's L2 norm over channels, scaled per
map between its 1st and 99th percentile, over the input and labelled with
its stride. Do the object regions light up at every level?
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

TOOLBOXES = ('mmdet', 'mmseg')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Save the feature-pyramid maps of one image as a PNG')
    parser.add_argument('config', help='detection or segmentation config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', default='feature_pyramid.png')
    parser.add_argument(
        '--tile',
        type=int,
        default=192,
        help='longer side of every tile in pixels (default: 192)')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='draw even if the checkpoint does not fit the model (parts of '
        'it stay randomly initialised)')
    return parser.parse_args(argv)


def _check_inputs(args):
    """The config (loaded) after checking every input; UsageError if bad."""
    from um_mae.toolkit.cli import (FIGURE_FORMATS, UsageError, check_out_file,
                                    load_config)
    check_out_file(args.out, FIGURE_FORMATS)
    if args.tile < 16:
        raise UsageError(f'--tile {args.tile} is too small; use 16 or more')
    cfg = load_config(args.config)
    scope = cfg.get('default_scope')
    if scope not in TOOLBOXES or 'backbone' not in cfg.get('model', {}):
        raise UsageError(
            f'{args.config} is no detection or segmentation config (its '
            f'default_scope is {scope!r}); give an mmdet or mmseg config')
    for what, path in (('checkpoint', args.checkpoint), ('image', args.image)):
        if not osp.isfile(path):
            raise UsageError(f'{what} {path!r} does not exist')
    return cfg


def _input(cfg, model, image_path):
    """The preprocessed image ``(1, 3, H, W)`` by the config's test
    pipeline (without annotations)."""
    from mmengine.dataset import Compose, pseudo_collate
    steps = [
        t for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] != 'LoadAnnotations'
    ]
    data = Compose(steps)(dict(img_path=image_path, img_id=0))
    return model.data_preprocessor(pseudo_collate([data]), False)['inputs']


def main(argv=None):
    args = parse_args(argv)
    from um_mae.toolkit.cli import UsageError, user_errors
    try:
        cfg = _check_inputs(args)
    except UsageError as e:
        sys.exit(f'error: {e}')

    with user_errors():
        import importlib

        import numpy as np
        from mmengine.registry import init_default_scope
        from PIL import Image, ImageDraw

        import um_mae  # noqa: F401
        from um_mae.engine.checkpoint import check_model_checkpoint
        from um_mae.models.converters import read_checkpoint, unwrap
        from um_mae.toolkit.visualization import (feature_energy,
                                                  heatmap_overlay, image_grid,
                                                  pyramid_maps, to_uint8_rgb)
        init_default_scope(cfg.default_scope)
        registry = importlib.import_module(f'{cfg.default_scope}.registry')
        model = registry.MODELS.build(cfg.model)
        # refused like the reconstruction figure: a pre-training checkpoint
        # on a detector config would draw a random neck
        checkpoint = read_checkpoint(args.checkpoint)
        check_model_checkpoint(model, checkpoint, args.checkpoint,
                               args.allow_partial)
        model.load_state_dict(
            unwrap(checkpoint), strict=not args.allow_partial)
        model.eval()
        try:
            inputs = _input(cfg, model, args.image)
        except Exception as e:  # unreadable image, pipeline error
            raise ValueError(f'cannot read {args.image!r} with the test '
                             f'pipeline of {args.config} ({e})') from e
        rows = pyramid_maps(model, inputs)

        pre = model.data_preprocessor
        image = to_uint8_rgb(inputs, pre.mean, pre.std)[0]
        H, W = image.shape[:2]
        scale = args.tile / max(H, W)
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        image = np.asarray(Image.fromarray(image).resize(size))
        tiles = []
        for _, maps in rows:
            row = [image]
            for x in maps:
                tile = Image.fromarray(
                    heatmap_overlay(feature_energy(x[0]), image))
                ImageDraw.Draw(tile).text((3, 2),
                                          f'stride {H // x.shape[-2]}',
                                          fill=(255, 255, 255))
                row.append(np.asarray(tile))
            tiles.append(row)
        grid = image_grid(
            tiles,
            row_labels=[name for name, _ in rows],
            label_width=8 + 6 * max(len(name) for name, _ in rows))
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    grid.save(args.out, optimize=True)
    print(f'written {args.out} ({grid.size[0]}x{grid.size[1]}, '
          f'{len(rows)} rows: {", ".join(name for name, _ in rows)})')


if __name__ == '__main__':
    main()
