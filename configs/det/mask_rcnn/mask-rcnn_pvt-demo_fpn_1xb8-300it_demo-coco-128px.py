# CPU demo: Mask R-CNN on a tiny UMPVT (random init), trained on the demo
# shapes (`python tools/make_demo_data.py coco`, 128 x 128 images) for 300
# iterations, then evaluated with the COCO metric (bbox and segm):
#   python tools/train.py <this file>
#   python tools/test.py <this file> work_dirs/<name>/iter_300.pth
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
    '../../_base_/datasets/demo_coco_instance.py',
    '../../_base_/um_mae_runtime.py',
]

# model: 4 stages of 16/32/64/128 channels at strides 4-32
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.UMPVT',
        arch='demo',
        img_size=128,
        learnable_pos_embed=True,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)))

# data: 1 process x 8 images
train_dataloader = dict(batch_size=8)

# schedule
max_iters = 300
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=10.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        T_max=max_iters,
        eta_min_ratio=0.01)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)

# runtime
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
