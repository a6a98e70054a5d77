# GFL with the UM-MAE Swin-T (UM-MAE appendix B.3), from the ImageNet
# fine-tuned backbone; windows of 16 tokens as in fine-tuning.
_base_ = '../_base_/gfl_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py'

# UM-MAE Table 3: after the intermediate IN1K fine-tuning (official DET
# config gfl_mae_swin_tiny_..._200e_100e: checkpoint-99)
pretrained = ('work_dirs/swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-'
              '256px/epoch_100.pth')

# model
model = dict(
    backbone=dict(
        type='mmpretrain.UMSwinTransformer',
        arch='tiny',
        window_size=16,
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
            in_channels=[192, 384, 768],
            out_channels=768), {{_base_.fpn_after_projection}}
    ])
