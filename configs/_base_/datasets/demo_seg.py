# Demo semantic segmentation data: shapes with per-pixel labels in mmseg's
# layout, written by `python tools/make_demo_data.py seg` to data/demo_seg/
# (160 train / 40 val images of 128x128; label 0 = background).

# data
dataset_type = 'BaseSegDataset'
data_root = 'data/demo_seg'
metainfo = dict(
    classes=('background', 'rectangle', 'ellipse', 'triangle'),
    palette=[[0, 0, 0], [220, 40, 40], [40, 200, 40], [30, 120, 220]])
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # a label map of another size than its image stops the run here
    dict(type='mmpretrain.CheckSegMapSize'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # a label map of another size than its image stops the run here
    dict(type='mmpretrain.CheckSegMapSize'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
