# Copyright (c) um-mae contributors. All rights reserved.
"""Reconstructions of a pre-trained UM-MAE, SimMIM or MAE model (a PNG).

    python tools/visualize_reconstruction.py CONFIG CHECKPOINT IMAGE
        [IMAGE ...] [--out reconstruction.png] [--seed 0] [--size 256]

One row per image: original, masked input (dropped tokens grey, tokens
replaced by the learnable token tinted blue), reconstruction, and
reconstruction with the visible tokens pasted back. Masks come from the
config's own mask transform (MAE: its backbone's random masking), seeded by
``--seed``. Predictions of a ``norm_pix`` head are un-normalised with each
patch's mean and variance in the original image, as MAE's visualisation
does.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Visualise masked-image-modeling reconstructions')
    parser.add_argument('config', help='pre-training config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--size',
        type=int,
        help='image side (default: the crop size of the config)')
    parser.add_argument('--seed', type=int, default=0, help='mask seed')
    parser.add_argument('--out', default='reconstruction.png')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='draw even if the checkpoint does not hold exactly the model\'s '
        'tensors (by default such a checkpoint is refused)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch

    from um_mae.engine.checkpoint import check_model_checkpoint
    from um_mae.models.converters import read_checkpoint, unwrap
    from um_mae.models.utils import token_to_patch_mask
    from um_mae.toolkit.cli import FIGURE_FORMATS, UsageError, check_out_file
    from um_mae.toolkit.pretrain_inputs import (build_pretrain_model,
                                                config_input_size,
                                                load_pretrain_config,
                                                pack_images, quiet_logger)
    from um_mae.toolkit.visualization import (image_grid, load_square_rgb,
                                              paint_masks, to_uint8_rgb)
    quiet_logger()
    try:
        check_out_file(args.out, FIGURE_FORMATS)
        cfg = load_pretrain_config(args.config, args.size)
        size = args.size or config_input_size(cfg)
        if not osp.isfile(args.checkpoint):
            raise ValueError(f'checkpoint {args.checkpoint!r} does not '
                             'exist; train the config with tools/train.py')
        # LoadImageFromFile gives BGR, which the data preprocessor expects
        images = [
            load_square_rgb(p, size)[..., ::-1].copy() for p in args.images
        ]

        model = build_pretrain_model(cfg)
        if not hasattr(model, 'reconstruct'):
            raise ValueError(
                f'{type(model).__name__} has no reconstruct(inputs, '
                'data_samples); use a UMMAE, UMMAEViT, CompilableSimMIM or '
                'ReconstructingMAE config (configs/pretrain/)')
        checkpoint = read_checkpoint(args.checkpoint)
        check_model_checkpoint(model, checkpoint, args.checkpoint,
                               args.allow_partial)
    except (ValueError, UsageError) as e:
        sys.exit(f'error: {e}')
    model.load_state_dict(unwrap(checkpoint), strict=not args.allow_partial)
    model.eval()
    torch.manual_seed(args.seed)  # MAE draws its mask in the backbone
    data = model.data_preprocessor(pack_images(cfg, images, args.seed))
    recon, mask, secondary = model.reconstruct(data['inputs'],
                                               data['data_samples'])

    pre = model.data_preprocessor
    originals = to_uint8_rgb(data['inputs'], pre.mean, pre.std)
    recons = to_uint8_rgb(recon, pre.mean, pre.std)
    rows = []
    for i, (orig, rec) in enumerate(zip(originals, recons)):
        m = mask[i].numpy()
        s = secondary[i].numpy() if secondary is not None else None
        seen = ~(secondary[i] if s is not None else mask[i])  # encoder saw
        seen_px = token_to_patch_mask(seen, (size, size)).numpy()
        pasted = np.where(seen_px[..., None], orig, rec)
        rows.append([orig, paint_masks(orig, m, s), rec, pasted])
    grid = image_grid(
        rows,
        col_labels=[
            'original', 'masked input', 'reconstruction',
            'reconstruction + visible'
        ])
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    grid.save(args.out, optimize=True)
    print(f'written {args.out} ({grid.size[0]}x{grid.size[1]})')


if __name__ == '__main__':
    main()
