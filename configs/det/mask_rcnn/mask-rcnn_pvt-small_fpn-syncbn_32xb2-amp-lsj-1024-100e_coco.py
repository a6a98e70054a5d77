# Mask R-CNN with the UM-MAE pre-trained PVT-S (Li et al. recipe).
_base_ = '../_base_/mask-rcnn_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

# UM-MAE section 4.3 / Table 6: a pyramid ViT transfers after the
# intermediate IN1K fine-tuning (200 pre-training + 100 fine-tuning epochs)
pretrained = ('work_dirs/pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-'
              '256px/epoch_100.pth')

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
