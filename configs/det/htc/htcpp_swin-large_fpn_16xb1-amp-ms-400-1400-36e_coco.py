# HTC++ with the UM-MAE pre-trained Swin-L (UM-MAE Table 5: 36 epochs).
# mmdet's multi-scale HTC (shorter side 400 - 1400, semantic branch on
# COCO-stuff maps) with our backbone, AdamW, AMP, a 3x schedule and
# soft-NMS at test time. InstaBoost, part of the original HTC++, is left
# out (it needs the extra `instaboostfast` package).
_base_ = [
    'mmdet::htc/htc_x101-64x4d-dconv-c3-c5_fpn_ms-400-1400-16xb1-20e_coco.py',
    '../../_base_/um_mae_runtime.py',
]

# UM-MAE section 4.2 / Table 5: the 800-epoch pre-training fine-tuned on
# IN1K for 100 epochs (Table 4), then on COCO
pretrained = 'work_dirs/swin-large_ummae-pre_8xb64-accum2-amp-coslr-100e_' \
    'in1k-256px/epoch_100.pth'

# model
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.UMSwinTransformer',
        arch='large',
        window_size=16,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        with_cp=True,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 768, 1536]),
    test_cfg=dict(
        rcnn=dict(
            nms=dict(type='soft_nms', iou_threshold=0.5, min_score=0.05))))

# data: 16 GPUs x 1 image = 16 (the base's batch)

# schedule
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# runtime: new checkpoints are written before old ones are deleted
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
