# Mask R-CNN with ViT-L (Li et al. recipe): the ViT-B config with the large
# arch (blocks 6, 12, 18, 24 global and tapped), 1024 channels and drop
# path 0.3.
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = ('work_dirs/ummae_vit-large-p16_8xb128-accum4-amp-coslr-800e_in1k'
              '/epoch_800.pth')

# model
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        with_cp=True,  # activation checkpointing: 2 images of 1024 per GPU
        init_cfg=dict(checkpoint=pretrained)),
    neck=[
        dict(type='mmpretrain.ViTMultiScaleAdaptor', embed_dim=1024),
        dict(
            type='FPN',
            in_channels=[1024] * 4,
            out_channels=256,
            num_outs=5,
            norm_cfg=dict(type='SyncBN', requires_grad=True)),
    ])
