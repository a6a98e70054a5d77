# Mask R-CNN with a UM-MAE pre-trained ViT-B (Li et al. recipe) through the
# ViTDet-style adaptor: windowed attention (14 x 14, the pre-training grid)
# with 4 global blocks; the stride 4/8/16/32 maps have 768 channels.
_base_ = '../_base_/mask-rcnn_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'work_dirs/ummae_vit-base-p16_8xb512-amp-coslr-200e_in1k/' \
    'epoch_200.pth'

# model
model = dict(
    backbone=dict(
        type='mmpretrain.ViTDetBackbone',
        arch='base',
        img_size=224,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=dict(in_channels=[768, 768, 768, 768]))
