# Mask R-CNN with ViT-L (Li et al. recipe): the ViT-B config with the large
# arch, 1024 channels and drop path 0.3.
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'work_dirs/ummae_vit-large-p16_8xb512-amp-coslr-800e_in1k/' \
    'epoch_800.pth'

# model
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        with_cp=True,  # activation checkpointing: 2 images of 1024 per GPU
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[1024, 1024, 1024, 1024]))
