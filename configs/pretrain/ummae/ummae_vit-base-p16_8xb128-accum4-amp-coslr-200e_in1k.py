# UM-MAE pilot on a plain ViT-B/16 (Li et al., 2022): uniform sampling keeps
# one 16-px token of every 2x2 block (25%), secondary masking swaps 25% of
# those for a learnable token; otherwise the MAE ViT-B baseline (2-layer
# 512-wide decoder, 200 epochs at 224 px).
_base_ = ['../mae/mae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k.py']

# model
model = dict(
    type='UMMAEViT',
    backbone=dict(
        _delete_=True,
        type='UMViT',
        arch='b',
        patch_size=16,
        with_vis_mask_token=True))

# data: 224 px -> a 14x14 token grid, 49 tokens kept, 12 of them replaced
train_pipeline = [
    # corrupt or truncated images stop the run; on_error='skip' skips them
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale=224,  # UM-MAE Sec. 4.1: the ViT pilot at 224 px
        crop_ratio_range=(0.2, 1.0),  # official mask_transform.py
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='UniformMaskGenerator',
        strategy='UM',  # UM-MAE Table 1 (d)
        secondary_mask_ratio=0.25),  # UM-MAE Table 1 (d), Sec. 4.1
    dict(type='PackInputs', algorithm_keys=['secondary_mask'])
]
# the MAE baseline's batch: 8 GPUs x 128 x accum 4 = 4096 images per update
# (UM-MAE Table 8; official Makefile
# pretrain_mae_vit_base_patch16_dec512d2b_224_mask_vmr025_200e)
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
