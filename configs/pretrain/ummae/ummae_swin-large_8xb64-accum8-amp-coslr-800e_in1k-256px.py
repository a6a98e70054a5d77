# UM-MAE pre-training of Swin-L on ImageNet-1k at 256 px for 800 epochs
# (official Makefile: 64 images x 8 GPUs x accum 8, 40 warm-up epochs,
# 8-layer decoder, position-bias MLP of 64 channels).
_base_ = ['./ummae_swin-tiny_8xb128-accum4-amp-coslr-800e_in1k-256px.py']

# model: 8-layer decoder (official models_mae_swin.py mae_swin_large_256)
model = dict(backbone=dict(arch='large'), neck=dict(in_channels=1536, depth=8))

# data: 8 GPUs x 64 x accum 8 = 4096 images per update (UM-MAE B.2: batch
# halved, accumulation doubled; official Makefile
# pretrain_mae_swin_large_256_mask_vmr025_800e)
train_dataloader = dict(batch_size=64)

# schedule: lr unchanged (set for 4096 images per update); the 40 warm-up
# epochs of the 800-epoch parent (UM-MAE B.2; the official command's 40)
optim_wrapper = dict(accumulative_counts=8)
# 8 GPUs x 64 = 512 images per step (mmengine does not count accumulation)
auto_scale_lr = dict(base_batch_size=512)
