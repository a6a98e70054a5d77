# UM-MAE Table 2: Swin-T, 200 epochs, secondary masking ratio 20% (the
# default is 25%). Scored by
# configs/finetune/swin/swin-tiny_ummae-sm20-pre_*.py
_base_ = ['./ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_in1k-256px.py']

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
    # the change: secondary masking ratio 20%, UM-MAE Table 2
    dict(
        type='UniformMaskGenerator', strategy='UM', secondary_mask_ratio=0.20),
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
