# UperNet with Swin-T straight from the UM-MAE pre-training (200 epochs), no
# intermediate ImageNet fine-tuning: UM-MAE Table 6 row "UM-MAE, no
# intermediate" (41.14 mIoU, against 45.96 with it). Only the checkpoint
# differs from the fine-tuned recipe.
_base_ = ['./swin-tiny_ummae-ft_upernet_8xb2-amp-160k_ade20k-512x512.py']

pretrained = 'work_dirs/ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_' \
    'in1k-256px/epoch_200.pth'

# model
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
