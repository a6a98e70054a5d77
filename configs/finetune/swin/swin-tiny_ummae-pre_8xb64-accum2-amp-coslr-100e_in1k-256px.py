# Fine-tune a UM-MAE pre-trained Swin-T (200 epochs) on ImageNet-1k:
# 100 epochs at 256 px, windows of 16, layer-wise lr decay 0.85, drop path
# 0.1 (UM-MAE Table 8; official Makefile
# finetune_mae_swin_tiny_256_mask_vmr025_200e_100e).
_base_ = [
    '../../_base_/datasets/imagenet_finetune_256px.py',
    '../_base_ummae-finetune_8xb64-accum2-amp-coslr-100e_in1k.py',
]

pretrained = ('work_dirs/ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_in1k-'
              '256px/epoch_200.pth')

# model
model = dict(
    backbone=dict(
        type='UMSwinTransformer',
        arch='tiny',
        window_size=16,  # official models_swin.py swin_tiny_256
        init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=768))
