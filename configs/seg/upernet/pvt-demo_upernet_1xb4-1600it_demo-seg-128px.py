# CPU demo: UperNet on the demo UMPVT (0.5 M parameters, random init) on the
# generated shapes of `python tools/make_demo_data.py seg` (128 px, 4
# classes with background), the layer-decay constructor and the warm-up +
# poly schedule of the ADE20K configs, scaled down to 1600 iterations
# (about 2 minutes on 2 CPU cores; our run: mIoU 91.8 on the 40 val images).
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/default_runtime.py',
    '../../_base_/datasets/demo_seg.py',
    '../../_base_/um_mae_runtime.py',
]

# model: plain BN in the heads (one process)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.UMPVT',
        arch='demo',
        img_size=128,
        learnable_pos_embed=True,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=32,
        num_classes=4,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=64, channels=16, num_classes=4, norm_cfg=norm_cfg))

# schedule: 1 process x 4 images (the demo data's batch)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmpretrain.UMLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=40),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        by_epoch=False,
        begin=40,
        end=1600)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1600, val_interval=800)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=4)

# runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook', by_epoch=False,
        interval=800))
randomness = dict(seed=0)
