# ImageNet-1k fine-tuning at 256 px: mmpretrain's Swin 256-px data (RandAug
# rand-m9-mstd0.5-inc1, random erasing 0.25, 64 images per GPU), evaluated
# as the official util/datasets.py: above 224 px crop_pct is 1, so the
# short edge is resized to 256 and the centre 256 x 256 is kept (mmpretrain
# resizes to 292 and crops 256).
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64_swin_256.py']

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,  # official util/datasets.py: int(256 / crop_pct 1.0)
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
