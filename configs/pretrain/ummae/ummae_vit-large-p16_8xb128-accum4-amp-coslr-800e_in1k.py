# UM-MAE ViT-L/16, 800 epochs at 224 px: the ViT-B pilot recipe with the
# large encoder and MAE's ViT-L schedule length (800 epochs, 40 warm-up
# epochs). The checkpoint the Mask R-CNN ViT-L configs start from.
_base_ = ['./ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k.py']

# model: 1024 channels into the 2-layer 512-wide decoder
model = dict(backbone=dict(arch='l'), neck=dict(embed_dim=1024))

# schedule: 800 epochs (MAE's ViT-L length), warm-up scaled with the epochs
param_scheduler = dict(warmup_epochs=40)  # UM-MAE B.2: 10 per 200 epochs
train_cfg = dict(max_epochs=800)
