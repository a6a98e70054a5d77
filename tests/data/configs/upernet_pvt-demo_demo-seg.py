# Tiny mmseg config for the launcher tests: UperNet on the demo UMPVT,
# reached from mmseg through custom_imports and the mmpretrain scope.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/default_runtime.py',
    '../../../configs/_base_/datasets/demo_seg.py',
    '../../../configs/_base_/um_mae_runtime.py',
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.UMPVT',
        arch='demo',
        img_size=128,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=16,
        num_classes=4,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=64, channels=8, num_classes=4, norm_cfg=norm_cfg))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=2),
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook', interval=2, by_epoch=False))
