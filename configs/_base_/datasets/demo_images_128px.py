# Demo pre-training data: 64 crops of scikit-image's bundled photos, written
# by `python tools/make_demo_data.py pretrain` to data/demo_images/.
# A dataset-only base: combine it with a model base and
# ../demo_runtime.py; children add a mask generator to the pipeline by
# overriding train_dataloader.dataset.dataset.pipeline.

# data
data_root = 'data/demo_images'
img_size = 128
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='CheckedLoadImageFromFile', on_error='raise'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
# Each sample's crop, flip and mask depend on (seed, epoch, index) only, so
# runs with other worker / process counts and resumed runs see the same data.
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='mmpretrain.EpochStampedSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmpretrain.PerSampleSeedDataset',
        seed=0,
        dataset=dict(
            type='mmpretrain.CustomDataset',
            data_root=data_root,
            with_label=False,
            pipeline=train_pipeline)))
