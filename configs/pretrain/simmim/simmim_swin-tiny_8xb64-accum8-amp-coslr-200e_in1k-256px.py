# SimMIM (Xie et al., 2022) baseline of UM-MAE on Swin-T, ImageNet-1k at
# 256 px for 200 epochs: the PVT-Small SimMIM recipe (random 75% of the
# 16-px tokens become mask tokens at full resolution, linear + pixel-shuffle
# head, L1 loss on the masked pixels) with the Swin encoder, windows of 16,
# and the batch split of the official Makefile.
_base_ = ['./simmim_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px.py']

# model
model = dict(
    backbone=dict(
        _delete_=True,
        type='UMSwinTransformer',
        arch='tiny',
        window_size=16,
        out_indices=-1,
        mask_mode='mask_token'),
    neck=dict(in_channels=768))

# data: 8 GPUs x 64 x accum 8 = 4096 images per update (UM-MAE Table 3
# caption; official Makefile pretrain_simmim_swin_tiny_256_200e)
train_dataloader = dict(batch_size=64)

# schedule: lr unchanged (set for 4096 images per update)
optim_wrapper = dict(accumulative_counts=8)
# 8 GPUs x 64 = 512 images per step (mmengine does not count accumulation)
auto_scale_lr = dict(base_batch_size=512)
