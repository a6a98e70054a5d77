# MAE (He et al., 2022) baseline on a tiny ViT, trained on the CPU demo
# images in a couple of minutes: `python tools/train.py <this file>`.
_base_ = [
    'mmpretrain::_base_/models/mae_vit-base-p16.py',
    '../../_base_/datasets/demo_images_128px.py',
    '../../_base_/demo_runtime.py',
]

# model: mmpretrain's MAE (plus `reconstruct`), ViT with 4 layers of width 96
# on 128-px images (8x8 tokens)
model = dict(
    type='ReconstructingMAE',
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=96,
            num_layers=4,
            num_heads=4,
            feedforward_channels=384),
        img_size={{_base_.img_size}}),
    neck=dict(
        num_patches=64,
        embed_dim=96,
        decoder_embed_dim=64,
        decoder_depth=1,
        decoder_num_heads=4))
