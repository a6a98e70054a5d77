# CPU demo: GFL (mmdet's model, our backbone) on a tiny UMPVT (random
# init), trained on the demo shapes (`python tools/make_demo_data.py coco`,
# 128 x 128 images) for 300 iterations, then evaluated with the COCO bbox
# metric:
#   python tools/train.py <this file>
#   python tools/test.py <this file> work_dirs/<name>/iter_300.pth
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../../_base_/um_mae_runtime.py',
]

# model: strides 8/16/32 of a 16/32/64/128-channel PVT, 2 extra levels
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.UMPVT',
        arch='demo',
        img_size=128,
        learnable_pos_embed=True,
        out_indices=(1, 2, 3)),
    neck=dict(
        in_channels=[32, 64, 128], out_channels=64, start_level=0, num_outs=5),
    bbox_head=dict(
        num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2),
    test_cfg=dict(nms_pre=200, max_per_img=20))

# data: the demo shapes of configs/_base_/datasets/demo_coco_instance.py,
# boxes only; 1 process x 8 images
data_root = 'data/demo_coco/'
metainfo = dict(
    classes=('rectangle', 'ellipse', 'triangle'),
    palette=[(220, 40, 40), (40, 200, 40), (30, 120, 220)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# schedule
max_iters = 300
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True,
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
