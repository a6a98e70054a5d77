# Fine-tune a UM-MAE pre-trained ViT-B/16 (200 epochs, the paper's pilot) on
# ImageNet-1k: 100 epochs at 224 px as MAE, layer-wise lr decay 0.8, drop
# path 0.1.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_ummae-finetune_8xb64-accum2-amp-coslr-100e_in1k.py',
]

pretrained = ('work_dirs/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k/'
              'epoch_200.pth')

# model: the pre-training UMViT without a mask, i.e. mmpretrain's
# VisionTransformer (same keys) with a learnable position table; no final
# norm before the pooling, a norm after it (ln2), as the official
# global-pool model. UMViT (not VisionTransformer, which re-draws its
# position table after any initializer but mmengine's plain `Pretrained`)
# keeps what `CheckedPretrained` loads: ours, official UM-MAE / MAE, timm,
# DeiT, MoCo v3 and mmpretrain ViT releases, exactly or with an error.
model = dict(
    backbone=dict(
        type='UMViT',
        arch='base',
        img_size=224,  # UM-MAE Sec. 4.1: the pilot fine-tunes at 224 px
        patch_size=16,
        final_norm=False,
        learnable_pos_embed=True,
        init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=768))

# schedule
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8))  # Table 8
