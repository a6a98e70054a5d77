# SimMIM baseline of the UM-MAE PVT demo: the same tiny PVT sees the whole
# 128-px image with 75% of its 16-px tokens (random sampling) replaced by a
# mask token; a linear layer + pixel shuffle predicts the pixels, L1 loss on
# the masked pixels. `python tools/train.py <this file>` on the demo images.
_base_ = ['../ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py']

# model
model = dict(
    _delete_=True,
    type='CompilableSimMIM',
    backbone=dict(
        type='UMPVT',
        arch='demo',
        img_size={{_base_.img_size}},
        out_indices=-1,
        mask_mode='mask_token'),
    neck=dict(
        type='SimMIMNormLinearDecoder', in_channels=128, encoder_stride=32),
    head=dict(
        type='SimMIMHead',
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))

# data
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale={{_base_.img_size}},
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='UniformMaskGenerator', strategy='RS', mask_ratio=0.75),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
