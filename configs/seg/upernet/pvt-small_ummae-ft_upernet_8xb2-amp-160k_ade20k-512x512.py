# UperNet with PVT-Small, UM-MAE pre-trained (200 epochs) and fine-tuned on
# ImageNet-1k (100 epochs), on ADE20K; no layer-wise lr decay.
_base_ = ['./_base_upernet_ummae_8xb2-amp-160k_ade20k-512x512.py']

# UM-MAE Table 3 (43.01 mIoU): after the intermediate IN1K fine-tuning
# (official SEG config upernet_mae_pvt_small_..._200e_100e: checkpoint-99)
pretrained = ('work_dirs/pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-'
              '256px/epoch_100.pth')

# model: the position table of the 256-px checkpoint is resized to 512
model = dict(
    backbone=dict(
        type='mmpretrain.UMPVT',
        arch='small',
        img_size=512,
        learnable_pos_embed=True,
        init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
