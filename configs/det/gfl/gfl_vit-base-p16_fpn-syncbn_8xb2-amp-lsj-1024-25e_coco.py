# GFL with a plain ViT-B (UM-MAE appendix B.3), Li et al.'s way: windowed
# attention with 4 global blocks; the outputs of blocks 6, 9 and 12
# (768 channels, stride 16) pass the resolution modules up x2 / identity /
# down x2 to strides 8 / 16 / 32 for the FPN.
_base_ = '../_base_/gfl_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'

pretrained = ('work_dirs/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'
              '/epoch_200.pth')

# model
model = dict(
    backbone=dict(
        type='mmpretrain.WindowedViT',
        arch='base',
        img_size=224,  # pre-training grid 14 x 14 = window size
        out_indices=(-7, -4, -1),  # blocks 2d/4, 3d/4 and d of d = 12
        drop_path_rate=0.1,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=[
        dict(
            type='mmpretrain.ViTMultiScaleAdaptor',
            embed_dim=768,
            rescales=(2, 1, 0.5)),
        # the base's FPN over three 768-channel maps
        {{_base_.fpn_after_projection}},
    ])
