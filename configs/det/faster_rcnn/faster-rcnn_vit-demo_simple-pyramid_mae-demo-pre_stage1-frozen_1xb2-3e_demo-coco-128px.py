# CPU demo of the simple-pyramid Faster R-CNN recipe, stage 1 (frozen
# backbone): the recipe config with the ViT of the MAE pre-training demo
# (4 blocks of width 96, 16-px tokens), the demo shapes at 128 px
# (`python tools/make_demo_data.py coco`) and a 3-epoch schedule:
#   python tools/make_demo_data.py pretrain coco
#   python tools/train.py \
#       configs/pretrain/mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py
#   python tools/train.py <this file>
#   python tools/test.py <this file> \
#       work_dirs/<name>/best_coco_bbox_mAP_stage1.pth
_base_ = './faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_stage1-b-freeze_' \
    '1xb2-15e_coco-512px.py'

pretrained = 'work_dirs/mae_vit-tiny-p16_1xb8-10e_demo-128px/epoch_10.pth'

# model: 8 x 8 tokens in 4 x 4 windows, blocks 2 and 4 global; a 64-channel
# FPN and heads for the 3 shape classes
image_size = (128, 128)
model = dict(
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=96,
            num_layers=4,
            num_heads=4,
            feedforward_channels=384),
        img_size=128,
        window_size=4,
        global_indices=(1, 3)),
    neck=[
        dict(type='mmpretrain.ViTSimplePyramid', embed_dim=96),
        dict(type='FPN', in_channels=[96] * 4, out_channels=64, num_outs=5),
    ],
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)))

# data: the demo shapes (configs/_base_/datasets/demo_coco_instance.py),
# boxes only
data_root = 'data/demo_coco/'
metainfo = dict(
    classes=('rectangle', 'ellipse', 'triangle'),
    palette=[(220, 40, 40), (40, 200, 40), (30, 120, 220)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
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

# schedule: 3 epochs of 120 iterations, 50 warm-up iterations, lr x 0.1
# after epoch 2; a larger lr than the recipe for the short run
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(
        type='StepLR',
        step_size=2,
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]

# runtime
default_hooks = dict(logger=dict(interval=20))
randomness = dict(seed=0)
