# GFL with the UM-MAE PVT-S (UM-MAE appendix B.3). As in the paper the
# detector starts from the ImageNet fine-tuned backbone (200 pre-training +
# 100 fine-tuning epochs); our checkpoints and official UM-MAE ones (keys
# `blocks.*`, converted on load) both work.
_base_ = '../_base_/gfl_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'

# official DET config gfl_mae_pvt_small_..._200e_100e: checkpoint-99
pretrained = ('work_dirs/pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-'
              '256px/epoch_100.pth')

# model
model = dict(
    backbone=dict(
        type='mmpretrain.UMPVT',
        arch='small',
        img_size=256,  # the pre-training size; the table is resized
        learnable_pos_embed=True,
        out_indices=(1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint=pretrained,
            prefix='backbone.')),
    # per-stage LayerNorm + Linear to 768 channels, then the FPN
    neck=[
        dict(
            type='mmpretrain.StageNormProjection',
            in_channels=[128, 320, 512],
            out_channels=768), {{_base_.fpn_after_projection}}
    ])
