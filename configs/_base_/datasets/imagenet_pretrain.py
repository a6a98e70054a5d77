# ImageNet-1k for self-supervised pre-training: mmpretrain's MAE data
# settings (data/imagenet/ with meta/train.txt, or one folder per class),
# with each sample's crop, flip and masks depending on (seed, epoch, index)
# only, so runs on other numbers of processes / workers and resumed runs
# see the same data. Children set the pipeline (mask generator included):
#   train_dataloader = dict(dataset=dict(dataset=dict(
#       pipeline=train_pipeline)))
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs512_mae.py']

train_dataloader = dict(
    sampler=dict(
        _delete_=True, type='mmpretrain.EpochStampedSampler', shuffle=True),
    # mmengine passes every key but `type` to the collate function, and a
    # base read through `mmpretrain::` carries `_scope_`: start afresh
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='mmpretrain.PerSampleSeedDataset',
        seed=0,
        dataset=dict(
            type='ImageNet',
            data_root='data/imagenet/',
            split='train',
            pipeline={{_base_.train_pipeline}})))
