# MAE (He et al., 2022) ViT-B/16 baseline of UM-MAE: random sampling (RS) of
# 25% of the tokens, 2-layer 512-wide decoder, 200 epochs at 224 px with
# the UM-MAE batch and schedule.
_base_ = [
    'mmpretrain::_base_/models/mae_vit-base-p16.py',
    '../../_base_/datasets/imagenet_pretrain.py',
    '../../_base_/schedules/pretrain_adamw-amp-coslr-200e.py',
    '../../_base_/pretrain_runtime.py',
]

# model: mmpretrain's MAE with `reconstruct` (tools/visualize_reconstruction)
# and the UM-MAE paper's ViT-B decoder of 2 layers (mmpretrain: 8)
model = dict(type='ReconstructingMAE', neck=dict(decoder_depth=2))

# data: 224 px (mmpretrain's MAE pipeline, mask drawn by the model)
# 8 GPUs x 128 x accum 4 = 4096 images per update
train_dataloader = dict(batch_size=128)

# schedule: 8 GPUs x 128 x accum 4 = 4096 images per update (UM-MAE
# Table 8; official Makefile pretrain_mae_vit_base_patch16_dec512d2b_224_200e)
optim_wrapper = dict(
    accumulative_counts=4,
    # no weight decay on biases and 1-D tensors only, tokens and all else
    # decayed: official main_pretrain.py (timm add_weight_decay, no skip
    # list); mmpretrain's MAE recipe also exempts cls_token, mask_token and
    # pos_embed (the latter is a fixed buffer-like table, never trained)
    paramwise_cfg=dict(flat_decay_mult=0.))
# mmengine's lr scaling counts GPUs x batch_size (8 x 128 = 1024), not the
# accumulated 4096 the lr is set for
auto_scale_lr = dict(base_batch_size=1024)
