# Fine-tune a UM-MAE pre-trained PVT-Small (200 epochs) on ImageNet-1k:
# 100 epochs at 256 px, layer-wise lr decay 0.85, drop path 0.1 (UM-MAE
# Table 8; official Makefile finetune_mae_pvt_small_256_mask_vmr025_200e_100e).
_base_ = [
    '../../_base_/datasets/imagenet_finetune_256px.py',
    '../_base_ummae-finetune_8xb64-accum2-amp-coslr-100e_in1k.py',
]

pretrained = ('work_dirs/ummae_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-'
              '256px/epoch_200.pth')

# model: the position table is learned from the pre-trained sin-cos one
model = dict(
    backbone=dict(
        type='UMPVT',
        arch='small',
        img_size=256,  # UM-MAE Sec. 4: fine-tuning at 256 px
        learnable_pos_embed=True,
        init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=512))
