# Mask R-CNN ViT-L, random initialization: no checkpoint and the 4x longer
# schedule (see the ViT-B random-init config).
_base_ = './mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = None

# schedule: 100 epochs of the 4x repeated COCO = 400 epochs
max_epochs = 100
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=458),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]
