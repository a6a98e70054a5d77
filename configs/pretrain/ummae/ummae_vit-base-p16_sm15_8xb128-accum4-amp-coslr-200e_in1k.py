# UM-MAE Table 1 (d): the ViT-B pilot with uniform masking at a secondary
# masking ratio of 15% (the default is 25%). Scored by
# configs/finetune/vit/vit-base-p16_ummae-sm15-pre_*.py
_base_ = ['./ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k.py']

# data
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
    # the change: secondary masking ratio 15%, UM-MAE Table 1 (d)
    dict(
        type='UniformMaskGenerator', strategy='UM', secondary_mask_ratio=0.15),
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
