# MAE (He et al., 2022) ViT-B/16 baseline of UM-MAE: random sampling (RS) of
# 25% of the tokens, 2-layer 512-wide decoder, 200 epochs at 224 px with
# the UM-MAE batch and schedule.
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']

# model: the UM-MAE paper's ViT-B decoder has 2 layers (mmpretrain: 8)
model = dict(neck=dict(decoder_depth=2))

# data: 8 GPUs x 128 x accum 4 = 4096 images per update
train_dataloader = dict(batch_size=128)

# schedule
optim_wrapper = dict(
    accumulative_counts=4,  # lr 1.5e-4 * 4096 / 256 kept
    # gradient clipping, off as in the paper: clip_grad=dict(max_norm=3.0)
    clip_grad=None)
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
        by_epoch=True,
        begin=10,
        end=200,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=200)
# mmengine's lr scaling counts GPUs x batch_size (8 x 128 = 1024), not the
# accumulated 4096 the lr above is set for
auto_scale_lr = dict(base_batch_size=1024)
