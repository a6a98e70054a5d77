# SimMIM (Xie et al., 2022) baseline of UM-MAE: PVT-Small sees the whole
# 256-px image with 75% of its 16-px tokens (random sampling) replaced by a
# mask token; a linear layer + pixel shuffle predicts the pixels, L1 loss on
# the masked pixels. Same data size and schedule as the UM-MAE recipe
# (official Makefile pretrain_simmim_pvt_small_256_200e).
_base_ = [
    '../ummae/ummae_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px.py'
]

# model: mmpretrain's SimMIM, its parameter update kept out of a
# torch.compile-d train_step (compile=True)
model = dict(
    _delete_=True,
    type='CompilableSimMIM',
    backbone=dict(
        type='UMPVT',
        arch='small',
        img_size=256,
        out_indices=-1,
        mask_mode='mask_token'),
    neck=dict(
        type='SimMIMNormLinearDecoder', in_channels=512, encoder_stride=32),
    head=dict(
        type='SimMIMHead',
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))

# data
train_pipeline = [
    # corrupt or truncated images stop the run; on_error='skip' skips them
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale=256,  # UM-MAE B.1: same resolution for every MIM method
        crop_ratio_range=(0.2, 1.0),  # official mask_transform.py
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    # UM-MAE Sec. 4.2: SimMIM with the optimal 25% random sampling of MAE
    dict(type='UniformMaskGenerator', strategy='RS', mask_ratio=0.75),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
