# GFL with a plain ViT-B (UM-MAE appendix B.3) through the ViTDet-style
# adaptor: windowed attention with 4 global blocks; the stride 8/16/32 maps
# (768 channels each) feed the FPN.
_base_ = '../_base_/gfl_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'

pretrained = 'work_dirs/ummae_vit-base-p16_8xb512-amp-coslr-200e_in1k/' \
    'epoch_200.pth'

# model
model = dict(
    backbone=dict(
        type='mmpretrain.ViTDetBackbone',
        arch='base',
        img_size=224,  # pre-training grid 14 x 14 = window size
        out_indices=(1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=dict(in_channels=[768, 768, 768]))
