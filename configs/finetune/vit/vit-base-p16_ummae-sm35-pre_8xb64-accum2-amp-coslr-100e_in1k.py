# Fine-tune the ViT-B/16 pre-trained with a 35% secondary masking ratio
# (UM-MAE Table 1 (d)): the UM-MAE ViT-B fine-tuning from that checkpoint.
_base_ = ['./vit-base-p16_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k.py']

pretrained = ('work_dirs/'
              'ummae_vit-base-p16_sm35_8xb128-accum4-amp-coslr-200e_in1k/'
              'epoch_200.pth')

# model
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
