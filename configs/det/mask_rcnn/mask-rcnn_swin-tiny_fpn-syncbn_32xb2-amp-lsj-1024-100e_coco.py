# Mask R-CNN with the UM-MAE pre-trained Swin-T (Li et al. recipe);
# windows of 16 tokens as in fine-tuning.
_base_ = '../_base_/mask-rcnn_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'work_dirs/ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_' \
    'in1k-256px/epoch_200.pth'

# model
model = dict(
    backbone=dict(
        type='mmpretrain.UMSwinTransformer',
        arch='tiny',
        window_size=16,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))
