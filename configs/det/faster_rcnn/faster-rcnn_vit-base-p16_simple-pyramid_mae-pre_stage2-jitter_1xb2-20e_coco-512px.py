# Stage 2 of the simple-pyramid Faster R-CNN recipe: the whole detector
# starts from stage 1's best checkpoint, the backbone is trained too, and
# the training images get strong colour jitter (brightness, contrast and
# saturation factors in [0.1, 2.0], hue shifted by up to 0.1 of the circle).
_base_ = [
    './faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_stage1-frozen_'
    '1xb2-20e_coco-512px.py',
    '../_base_/strong_color_jitter.py',
]

# every weight comes from stage 1 (a stage-1 run with another --work-dir:
# --cfg-options load_from=DIR/best_coco_bbox_mAP_stage1.pth)
pretrained = None
load_from = 'work_dirs/faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_' \
    'stage1-frozen_1xb2-20e_coco-512px/best_coco_bbox_mAP_stage1.pth'

# model
model = dict(backbone=dict(frozen=False))

# data
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale={{_base_.image_size}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.strong_color_jitter}},
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# runtime
default_hooks = dict(checkpoint=dict(filename_tmpl='stage2.pth'))
