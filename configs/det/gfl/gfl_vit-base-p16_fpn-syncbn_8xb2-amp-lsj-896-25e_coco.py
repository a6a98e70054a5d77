# GFL with a plain ViT-B (UM-MAE appendix B.3), Li et al.'s way: windowed
# attention with 4 global blocks; the outputs of blocks 6, 9 and 12
# (768 channels, stride 16) pass the resolution modules up x2 / identity /
# down x2 to strides 8 / 16 / 32 for the FPN. Trained at 896 x 896: UM-MAE
# section 4 (pilot settings) and B.3 (1024 x 1024 did not fit 24 GB GPUs).
_base_ = '../_base_/gfl_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'

# UM-MAE section 4 pilot: ViT-B is fine-tuned directly from the 200-epoch
# pre-training (no intermediate ImageNet fine-tuning for a plain ViT)
pretrained = ('work_dirs/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'
              '/epoch_200.pth')

# model
image_size = (896, 896)  # UM-MAE section 4 pilot settings, B.3
model = dict(
    # every training image is padded to 896 x 896
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
    backbone=dict(
        type='mmpretrain.WindowedViT',
        arch='base',
        img_size=224,  # pre-training grid 14 x 14 = window size
        out_indices=(-7, -4, -1),  # blocks 2d/4, 3d/4 and d of d = 12
        drop_path_rate=0.1,  # official DET gfl_mae_pvt_small (also for ViT)
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=[
        dict(
            type='mmpretrain.ViTMultiScaleAdaptor',
            embed_dim=768,
            rescales=(2, 1, 0.5)),
        # the base's FPN over three 768-channel maps
        {{_base_.fpn_after_projection}},
    ])

# data: large-scale jitter at 896 (scale 0.1 - 2.0 of 896, crop 896)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),  # UM-MAE B.3
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_type='absolute_range',
        crop_size=image_size,
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
