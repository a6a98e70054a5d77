# Pre-training schedule of UM-MAE and its baselines (official Makefiles):
# AdamW (0.9, 0.95), weight decay 0.05, base lr 1.5e-4 per 256 images
# scaled to the 4096 images of an update, 10 warm-up epochs, then cosine
# to 0 at 200 epochs, fp16 AMP. Configs set the batch split (batch size,
# accumulative_counts), auto_scale_lr and the weight-decay exceptions.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    # gradient clipping, off as in the paper: clip_grad=dict(max_norm=3.0)
    clip_grad=None,
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 4096 / 256,
        betas=(0.9, 0.95),
        weight_decay=0.05,
        # one kernel for all parameters (CPU and CUDA) instead of a loop
        fused=True))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=190,
        eta_min=0.,
        by_epoch=True,
        begin=10,
        end=200,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)
