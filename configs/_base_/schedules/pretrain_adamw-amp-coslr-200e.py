# Pre-training schedule of UM-MAE and its baselines (official Makefiles):
# AdamW (0.9, 0.95), weight decay 0.05, base lr 1.5e-4 per 256 images
# scaled to the 4096 images of an update, 10 warm-up epochs, then cosine
# to 0 at 200 epochs, fp16 AMP. Configs set the batch split (batch size,
# accumulative_counts), auto_scale_lr and the weight-decay exceptions.
optim_wrapper = dict(
    # fp16 autocast + loss scaling: official engine_pretrain.py
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    # gradient clipping, off as in the paper: clip_grad=dict(max_norm=3.0)
    clip_grad=None,
    optimizer=dict(
        type='AdamW',  # UM-MAE Table 8
        # UM-MAE Table 8 base lr 1.5e-4; B.2 linear rule: x 4096 / 256
        lr=1.5e-4 * 4096 / 256,
        betas=(0.9, 0.95),  # UM-MAE Table 8
        weight_decay=0.05,  # UM-MAE Table 8
        # one kernel for all parameters (CPU and CUDA) instead of a loop
        fused=True))
# the official util/lr_sched.py: lr from the fractional epoch, 0 at the
# first iteration, linear to the peak at the end of the warm-up, half-cycle
# cosine to min_lr 0 (official main_pretrain.py default) at the last epoch;
# set at the first micro-batch of each accumulation window. `end` defaults
# to train_cfg.max_epochs.
param_scheduler = dict(
    type='WarmupHalfCosineLR',
    warmup_epochs=10,  # UM-MAE Table 8 (200 epochs)
    eta_min=0.,
    by_epoch=True,
    begin=0,
    convert_to_iter_based=True)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)  # Table 8
