# Mask R-CNN with a UM-MAE pre-trained ViT-B (Li et al. recipe): windowed
# attention (14 x 14, the pre-training grid) with 4 global blocks; Li et
# al.'s resolution modules turn the outputs of blocks 3, 6, 9 and 12 into
# stride 4 / 8 / 16 / 32 maps (768 channels) for the FPN.
_base_ = '../_base_/mask-rcnn_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = ('work_dirs/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'
              '/epoch_200.pth')

# model
model = dict(
    backbone=dict(
        type='mmpretrain.WindowedViT',
        arch='base',
        img_size=224,
        # Li et al. 2.4 (2): dp 0.1 is best for every ViT-B initialization
        drop_path_rate=0.1,  # out_indices: blocks d/4 ... d by default
        # Li et al. section 3: relative position biases shared across the
        # windowed blocks and, separately, across the global blocks, plus
        # the absolute table, in every arm; the biases start at zero and
        # the absolute table is transferred (BEiT arm: the reverse)
        rel_pos_bias='shared',
        transferred_pos=('abs', ),
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    # a neck list is built as nn.Sequential; the FPN is the base's (SyncBN,
    # 5 levels) on 768-channel maps
    neck=[
        dict(type='mmpretrain.ViTMultiScaleAdaptor', embed_dim=768),
        dict(
            type='FPN',
            in_channels=[768] * 4,
            out_channels=256,
            num_outs=5,
            norm_cfg=dict(type='SyncBN', requires_grad=True)),
    ])

# schedule: Li et al. tune lr and wd per initialization (section 2.4,
# tools/sweep.py runs that protocol); until then every arm takes the centre
# of their grid
optim_wrapper = dict(
    optimizer=dict(
        lr=1.6e-4,  # Li et al. 2.4 (1): grid centre
        weight_decay=0.1))  # Li et al. 2.4 (1): grid centre
