# UM-MAE on a tiny plain ViT, trained on the CPU demo images (128 px) in a
# couple of minutes: `python tools/make_demo_data.py pretrain` once, then
# `python tools/train.py <this file>`. The MAE demo with uniform masking and
# secondary masking instead of random masking.
_base_ = ['../mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py']

# model: 8x8 tokens, 16 kept (one per 2x2 block), 4 of them replaced
model = dict(
    type='UMMAEViT',
    backbone=dict(
        _delete_=True,
        type='UMViT',
        arch=dict(
            embed_dims=96, num_layers=4, num_heads=4,
            feedforward_channels=384),
        img_size={{_base_.img_size}},
        patch_size=16,
        with_vis_mask_token=True))

# data
train_pipeline = [
    # corrupt or truncated images stop the run; on_error='skip' skips them
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale={{_base_.img_size}},
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='UniformMaskGenerator', strategy='UM', secondary_mask_ratio=0.25),
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
