# Mask R-CNN recipe of Li et al. ("Benchmarking Detection Transfer Learning
# with Vision Transformers", 2021), shared by the ViT / PVT / Swin configs.
# mmdet's strong baseline already holds the detector side of that recipe:
# FPN with SyncBN, 2-conv RPN head, 4conv1fc box head and mask head with
# SyncBN, 1024 x 1024 large-scale jitter, AMP, 64 images per batch,
# 25 epochs over COCO repeated 4 times = 100 epochs. We change the
# optimizer (AdamW, half-period cosine, 0.25-epoch warm-up) and pad test
# images to 1024 x 1024 too. A model config sets the backbone, `pretrained`
# and the FPN in_channels.
_base_ = [
    'mmdet::strong_baselines/'
    'mask-rcnn_r50_fpn_rpn-2conv_4conv1fc_syncbn-all_amp-lsj-100e_coco.py',
    '../../_base_/um_mae_runtime.py',
]

# model
# torch's SyncBN also in the heads: mmdet's base uses mmcv's MMSyncBN there
# (for empty RoI batches, which torch's SyncBN handles now), and that one
# cannot even be built without a process group
head_norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(_delete_=True),  # set by the model configs
    roi_head=dict(
        bbox_head=dict(norm_cfg=head_norm_cfg),
        mask_head=dict(norm_cfg=head_norm_cfg)))

# data: test images are resized to 1024 (longer side) and padded to 1024
backend_args = None
image_size = (1024, 1024)
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# 32 GPUs x 2 images = 64 (as in Li et al.; 8 GPUs x 8 with enough memory)
train_dataloader = dict(batch_size=2)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# schedule
# AdamW (0.9, 0.999); lr and weight decay as Li et al. use for MAE-style
# initializations of ViT-B (they tune them per initialization: sweep lr if
# the pre-training differs)
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=8e-5,
        betas=(0.9, 0.999),
        weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.)
        }))
max_epochs = 25  # of the 4x repeated dataset
# warm-up: 0.25 COCO epoch = 0.25 x 117266 images / 64 = 458 iterations;
# then a half-period cosine to 0
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=458),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)

# runtime: new checkpoints are written before old ones are deleted
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
