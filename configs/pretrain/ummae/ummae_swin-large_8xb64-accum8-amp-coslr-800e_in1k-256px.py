# UM-MAE pre-training of Swin-L on ImageNet-1k at 256 px for 800 epochs
# (official Makefile: 64 images x 8 GPUs x accum 8, 40 warm-up epochs,
# 8-layer decoder, position-bias MLP of 64 channels).
_base_ = ['./ummae_swin-tiny_8xb128-accum4-amp-coslr-800e_in1k-256px.py']

# model
model = dict(backbone=dict(arch='large'), neck=dict(in_channels=1536, depth=8))

# data: 8 GPUs x 64 x accum 8 = 4096 images per update
train_dataloader = dict(batch_size=64)

# schedule: lr unchanged (set for 4096 images per update)
optim_wrapper = dict(accumulative_counts=8)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=760,
        eta_min=0.,
        by_epoch=True,
        begin=40,
        end=800,
        convert_to_iter_based=True)
]
# 8 GPUs x 64 = 512 images per step (mmengine does not count accumulation)
auto_scale_lr = dict(base_batch_size=512)
