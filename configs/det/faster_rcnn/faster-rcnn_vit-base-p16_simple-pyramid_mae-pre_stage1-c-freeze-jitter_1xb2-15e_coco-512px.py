# Stage 1 row "(C) Freeze + Color Jitter" of the course report's Table 1:
# row (B) plus strong colour jitter on the training images (Li et al.'s:
# brightness, contrast and saturation factors in [0.1, 2.0], hue shifted by
# up to 0.1 of the circle; report section 4, "Color Jitter").
_base_ = [
    './faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_stage1-b-freeze_'
    '1xb2-15e_coco-512px.py',
    '../_base_/strong_color_jitter.py',
]

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
