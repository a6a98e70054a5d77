# CPU demo of the simple-pyramid Faster R-CNN recipe, stage 2: the demo of
# stage 1, started from its best checkpoint, with the backbone trained and
# strong colour jitter (as the recipe's stage 2):
#   python tools/train.py <this file>
#   python tools/test.py <this file> \
#       work_dirs/<name>/best_coco_bbox_mAP_stage2.pth
_base_ = [
    './faster-rcnn_vit-demo_simple-pyramid_mae-demo-pre_stage1-frozen_'
    '1xb2-3e_demo-coco-128px.py',
    '../_base_/strong_color_jitter.py',
]

# every weight comes from stage 1
pretrained = None
load_from = 'work_dirs/faster-rcnn_vit-demo_simple-pyramid_mae-demo-pre_' \
    'stage1-frozen_1xb2-3e_demo-coco-128px/best_coco_bbox_mAP_stage1.pth'

# model
model = dict(backbone=dict(frozen=False))

# data
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale={{_base_.image_size}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.strong_color_jitter}},
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# runtime
default_hooks = dict(checkpoint=dict(filename_tmpl='stage2.pth'))
