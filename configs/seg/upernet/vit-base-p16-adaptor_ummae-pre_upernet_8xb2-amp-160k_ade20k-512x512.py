# UperNet with a UM-MAE pre-trained ViT-B/16 (200 epochs) on ADE20K, as
# MAE: the plain ViT (windowed blocks + 4 global ones) gives 4 scales
# through the ViTDet-style adaptor; layer-wise lr decay 0.65.
_base_ = ['./_base_upernet_ummae_8xb2-amp-160k_ade20k-512x512.py']

pretrained = ('work_dirs/ummae_vit-base-p16_8xb512-amp-coslr-200e_in1k/'
              'epoch_200.pth')

# model: the 224-px position table is resized to every input
model = dict(
    backbone=dict(
        type='mmpretrain.ViTDetBackbone',
        arch='base',
        img_size=224,
        init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))

# schedule
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.65))
