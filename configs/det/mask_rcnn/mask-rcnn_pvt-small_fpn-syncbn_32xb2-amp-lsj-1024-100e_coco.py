# Mask R-CNN with the UM-MAE pre-trained PVT-S (Li et al. recipe).
_base_ = '../_base_/mask-rcnn_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'work_dirs/ummae_pvt-small_8xb128-accum4-amp-coslr-200e_' \
    'in1k-256px/epoch_200.pth'

# model
model = dict(
    backbone=dict(
        type='mmpretrain.UMPVT',
        arch='small',
        img_size=256,  # the pre-training size; the table is resized
        learnable_pos_embed=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 320, 512]))
