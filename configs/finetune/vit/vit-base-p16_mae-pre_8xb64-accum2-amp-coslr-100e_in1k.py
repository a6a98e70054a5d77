# Fine-tune the MAE ViT-B/16 baseline (random sampling, UM-MAE Table 1 (a);
# official Makefile finetune_mae_vit_base_patch16_dec512d2b_200e_100e): the
# UM-MAE ViT-B fine-tuning from the MAE checkpoint.
_base_ = ['./vit-base-p16_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k.py']

pretrained = ('work_dirs/mae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k/'
              'epoch_200.pth')

# model
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
