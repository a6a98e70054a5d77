# CPU demo runtime: the pre-training runtime with a short schedule, frequent
# logs (with ETA), a checkpoint every epoch and plain fp32 AdamW.
_base_ = ['./pretrain_runtime.py']

# schedule
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    clip_grad=dict(max_norm=3.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=9,
        by_epoch=True,
        begin=1,
        end=10,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)

# runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=4),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
resume = False
# 1 process x 8 images; lr above is for that batch
auto_scale_lr = dict(base_batch_size=8, enable=False)
