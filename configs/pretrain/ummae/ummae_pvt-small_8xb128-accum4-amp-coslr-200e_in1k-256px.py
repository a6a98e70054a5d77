# UM-MAE pre-training of PVT-Small on ImageNet-1k at 256 px for 200 epochs
# (UM sampling, secondary masking ratio 0.25), the recipe of the paper.
_base_ = [
    './_base_ummae_pvt-small.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['um_mae'], allow_failed_imports=False)

# data
train_pipeline = [
    # corrupt or truncated images stop the run; on_error='skip' skips them
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale=256,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='UniformMaskGenerator', strategy='UM', secondary_mask_ratio=0.25),
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
# 8 GPUs x 128 x accum 4 = 4096 images per update
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))

# schedule
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    accumulative_counts=4,
    # gradient clipping, off as in the paper: clip_grad=dict(max_norm=3.0)
    clip_grad=None,
    # base lr 1.5e-4 per 256 images, scaled to the 4096 of an update
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 4096 / 256,
        betas=(0.9, 0.95),
        weight_decay=0.05,
        # one kernel for all parameters (CPU and CUDA) instead of a loop
        fused=True),
    # as the official code: no weight decay on 1-D parameters (norms, biases)
    paramwise_cfg=dict(flat_decay_mult=0.))
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
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)

# runtime
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
# mmengine scales the lr by (GPUs x batch_size) / base_batch_size and does
# not count accumulative_counts: 8 x 128 = 1024 per step is the batch the
# lr above (4096 per update) was set for
auto_scale_lr = dict(base_batch_size=1024)
