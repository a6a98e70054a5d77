# UperNet with a UM-MAE pre-trained ViT-B/16 (200 epochs) on ADE20K, as
# MAE: the plain ViT (windowed blocks + 4 global ones) gives the outputs of
# blocks 3, 6, 9 and 12; Li et al.'s resolution modules turn them into 4
# scales (strides 4 - 32); layer-wise lr decay 0.65.
_base_ = ['./_base_upernet_ummae_8xb2-amp-160k_ade20k-512x512.py']

# UM-MAE section 4 pilot: a plain ViT transfers directly from pre-training
pretrained = ('work_dirs/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'
              '/epoch_200.pth')

# model: the 224-px position table is resized to every input
model = dict(
    backbone=dict(
        type='mmpretrain.WindowedViT',
        arch='base',
        img_size=224,
        # blocks d/4 ... d (the base's (0, 1, 2, 3) are the stages of the
        # pyramid backbones)
        out_indices=None,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(type='mmpretrain.ViTMultiScaleAdaptor', embed_dim=768),
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))

# schedule
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.65))
