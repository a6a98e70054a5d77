# Stage 1 row "(F) Decay lr + Color Jitter" of the course report's Table 1:
# row (E) plus the strong colour jitter of row (C).
_base_ = [
    './faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_stage1-e-decay-lr_'
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
