# GFL transfer recipe of UM-MAE (Li et al., 2022, appendix B.3), shared by
# the PVT-S, Swin-T and ViT-B configs: 1024 x 1024 large-scale jitter, AdamW
# lr 1e-4 / wd 0.05 without decay on norms, biases and position tables,
# 2000-iteration linear warm-up then cosine, 25 epochs, AMP.
# A model config sets the backbone, its `pretrained` checkpoint and the FPN
# in_channels.
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../../_base_/um_mae_runtime.py',
]

# model
image_size = (1024, 1024)
# the official recipe's MMSyncBN, as torch's SyncBN (builds without a
# process group, so configs can be checked on one CPU)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # every training image is padded to 1024 x 1024
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
    backbone=dict(_delete_=True),  # set by the model configs
    # the backbones return strides 8, 16 and 32; two extra levels on top
    neck=dict(start_level=0, num_outs=5, norm_cfg=norm_cfg))
# the PVT and Swin configs, as the official detector, first layer-normalise
# each stage map and project it to 768 channels:
#   neck=[dict(type='mmpretrain.StageNormProjection', in_channels=[...],
#              out_channels=768), {{_base_.fpn_after_projection}}]
fpn_after_projection = dict(
    type='FPN',
    in_channels=[768, 768, 768],
    out_channels=256,
    start_level=0,
    add_extra_convs='on_output',
    num_outs=5,
    norm_cfg=norm_cfg)

# data: large-scale jitter (scale 0.1 - 2.0 of 1024, crop 1024)
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
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
# 8 GPUs x 2 images = 16
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

# schedule
max_epochs = 25
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale=dict(init_scale=512.),
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=2000),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.01,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# runtime
default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook', interval=5,
        max_keep_ckpts=2))
