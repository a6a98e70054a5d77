# Faster R-CNN on a plain ViT-B through ViTDet's simple feature pyramid (Li,
# Mao, Girshick, He, 2022), the recipe of the course report we follow (Liu,
# Qi, Lee, "Self-supervised Pre-training for Object Detection"): its Table 1
# row "Stage 1 (B) Freeze", the base of the other rows. The MAE ViT-B
# (facebookresearch/mae mae_pretrain_vit_base.pth, pre-trained at 224 px)
# is frozen; its last block's stride-16 map gives strides 4 / 8 / 16 / 32
# (transposed convs up, identity, max pooling down), the FPN adds a pooled
# stride-64 level for the RPN, and the standard Faster R-CNN heads use
# mmdet's default anchors
# (sizes 32 - 512, ratios 0.5 / 1 / 2). The stage-2 rows "(B) -> (E)" and
# "(B) -> (F)" (..._stage2-b-to-e_..., ..._stage2-b-to-f_...) start from
# this run's best checkpoint.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../../_base_/um_mae_runtime.py',
]

# the report pre-trains MAE ViT-B/16 itself with the official code; the
# official release is its stand-in
pretrained = 'checkpoints/mae_pretrain_vit_base.pth'

# model
image_size = (512, 512)
model = dict(
    # every training image is padded to 512 x 512
    data_preprocessor=dict(  # report section 3: all inputs 512 x 512
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.WindowedViT',
        arch='base',
        # the 14 x 14 position table of 224 px is interpolated to the
        # 32 x 32 grid of 512 px; 14 x 14 windows, blocks 3, 6, 9, 12 global
        img_size=224,
        out_indices=(-1, ),  # the last block's map only (report section 3)
        frozen=True,  # Table 1 (B) "Freeze"
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    # a neck list is built as nn.Sequential
    neck=[
        dict(type='mmpretrain.ViTSimplePyramid', embed_dim=768),
        # num_outs=5: the 5th level is a stride-2 max pooling of the 4th
        dict(type='FPN', in_channels=[768] * 4, out_channels=256, num_outs=5),
    ])

# data: the longer side resized to 512, horizontal flip; test images padded
# to 512 x 512 as well
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# 1 GPU x 2 images = 2 (report section 3)
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# schedule (report section 3): AdamW (0.9, 0.999), lr 1e-4, wd 0.01 (none
# on norms, biases and position tables), 8000-iteration linear warm-up, lr x
# 0.1 every 10 epochs
max_epochs = 15  # Table 1: "Stage 1 (15 epochs)"
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999),
        weight_decay=0.01),  # report section 3
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
        end=8000),  # report section 3: 8000 warm-up steps
    dict(
        type='StepLR',
        step_size=10,  # report section 3: x 0.1 every 10 epochs
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
auto_scale_lr = dict(enable=False, base_batch_size=2)

# runtime: the best checkpoint by bbox mAP is kept under a fixed name,
# best_coco_bbox_mAP_stage1.pth (mmengine names it best_<metric>_<regular
# checkpoint name>), for stage 2 (Table 1: "resuming from (A)'s best
# checkpoint in Stage 1"); stage1.pth is the latest, for --resume
default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        filename_tmpl='stage1.pth',
        save_best='coco/bbox_mAP',
        rule='greater'))
