# UM-MAE on a tiny PVT, trained on the CPU demo images (128 px) in a few
# minutes: `python tools/train.py <this file>`. The loss should fall.
_base_ = [
    './_base_ummae_pvt-small.py',
    '../../_base_/datasets/demo_images_128px.py',
    '../../_base_/demo_runtime.py',
]

# model: 4 stages of 16/32/64/128 channels; 128 px -> 8x8 tokens of 16 px
model = dict(
    backbone=dict(arch='demo', img_size={{_base_.img_size}}),
    neck=dict(
        in_channels=128,
        img_size={{_base_.img_size}},
        embed_dims=64,
        depth=1,
        num_heads=4))

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
