# UM-MAE pre-training of PVT-Small on ImageNet-1k at 256 px for 200 epochs
# (UM sampling, secondary masking ratio 0.25), the recipe of the paper.
_base_ = [
    './_base_ummae_pvt-small.py',
    '../../_base_/datasets/imagenet_pretrain.py',
    '../../_base_/schedules/pretrain_adamw-amp-coslr-200e.py',
    '../../_base_/pretrain_runtime.py',
]

# data
train_pipeline = [
    # corrupt or truncated images stop the run; on_error='skip' skips them
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale=256,  # UM-MAE Sec. 4
        crop_ratio_range=(0.2, 1.0),  # official mask_transform.py
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='UniformMaskGenerator',
        strategy='UM',  # UM-MAE Sec. 3
        secondary_mask_ratio=0.25),  # UM-MAE Sec. 4.2, Table 2
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
# 8 GPUs x 128 x accum 4 = 4096 images per update (UM-MAE Table 8; official
# Makefile pretrain_mae_pvt_small_256_mask_vmr025_200e)
train_dataloader = dict(
    batch_size=128, dataset=dict(dataset=dict(pipeline=train_pipeline)))

# schedule
optim_wrapper = dict(
    accumulative_counts=4,  # UM-MAE Table 8
    # no weight decay on biases and 1-D tensors only: official
    # main_pretrain.py (timm add_weight_decay, no skip list)
    paramwise_cfg=dict(flat_decay_mult=0.))
# mmengine scales the lr by (GPUs x batch_size) / base_batch_size and does
# not count accumulative_counts: 8 x 128 = 1024 per step is the batch the
# lr (set for 4096 per update) was set for
auto_scale_lr = dict(base_batch_size=1024)
