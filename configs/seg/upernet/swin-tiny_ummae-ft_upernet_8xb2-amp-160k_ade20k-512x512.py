# UperNet with Swin-T (windows of 16), UM-MAE pre-trained (200 epochs) and
# fine-tuned on ImageNet-1k (100 epochs), on ADE20K; no layer-wise lr
# decay.
_base_ = ['./_base_upernet_ummae_8xb2-amp-160k_ade20k-512x512.py']

# UM-MAE Table 6 row "UM-MAE, intermediate" (45.96 mIoU): after the
# intermediate IN1K fine-tuning (official SEG config: checkpoint-99)
pretrained = ('work_dirs/swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-'
              '256px/epoch_100.pth')

# model
model = dict(
    backbone=dict(
        type='mmpretrain.UMSwinTransformer',
        arch='tiny',
        window_size=16,
        init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
