# UM-MAE pilot on a plain ViT-B/16 (Li et al., 2022): uniform sampling keeps
# one 16-px token of every 2x2 block (25%), secondary masking swaps 25% of
# those for a learnable token, 2-layer 512-wide decoder, 200 epochs at
# 224 px. mmpretrain's MAE ViT-B recipe otherwise.
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']
custom_imports = dict(imports=['um_mae'], allow_failed_imports=False)

# model
model = dict(
    type='UMMAEViT',
    backbone=dict(
        _delete_=True,
        type='UMViT',
        arch='b',
        patch_size=16,
        with_vis_mask_token=True),
    neck=dict(decoder_depth=2))

# data: 224 px -> a 14x14 token grid, 49 tokens kept, 12 of them replaced
train_pipeline = [
    # corrupt or truncated images stop the run; on_error='skip' skips them
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='UniformMaskGenerator', strategy='UM', secondary_mask_ratio=0.25),
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
# 8 GPUs x 512 = 4096 images per step (lr 1.5e-4 x 4096 / 256 in the base)
train_dataloader = dict(batch_size=512, dataset=dict(pipeline=train_pipeline))

# schedule: 10 warm-up epochs, as the official 200-epoch UM-MAE runs
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=190,
        eta_min=0.,
        by_epoch=True,
        begin=10,
        end=200,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=200)
auto_scale_lr = dict(base_batch_size=4096)

# gradient clipping, off as in the paper: clip_grad=dict(max_norm=3.0)
optim_wrapper = dict(clip_grad=None)
