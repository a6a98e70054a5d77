# UM-MAE Table 1 (b): the ViT-B pilot with grid-wise sampling (GS, MAE's
# Fig. 6): the same token of every 2x2 block is kept in every image, no
# secondary masking. Scored by
# configs/finetune/vit/vit-base-p16_ummae-gs-pre_*.py
_base_ = ['./ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k.py']

# model: no secondary masking, so no token for it
model = dict(backbone=dict(with_vis_mask_token=False))

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
    # the change: grid-wise sampling, UM-MAE Table 1 (b)
    dict(type='UniformMaskGenerator', strategy='GS'),
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
