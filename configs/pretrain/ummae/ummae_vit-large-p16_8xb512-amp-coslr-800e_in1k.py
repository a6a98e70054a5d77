# UM-MAE ViT-L/16, 800 epochs at 224 px: the ViT-B pilot recipe with the
# large encoder and MAE's ViT-L schedule length (800 epochs, 40 warm-up
# epochs). The checkpoint the Mask R-CNN ViT-L configs start from.
_base_ = ['./ummae_vit-base-p16_8xb512-amp-coslr-200e_in1k.py']

# model: 1024 channels into the 2-layer 512-wide decoder
model = dict(backbone=dict(arch='l'), neck=dict(embed_dim=1024))

# schedule
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
train_cfg = dict(max_epochs=800)
