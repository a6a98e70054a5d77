# Fine-tune a UM-MAE pre-trained Swin-L (800 epochs) on ImageNet-1k:
# the Swin-T recipe with drop path 0.2 and layer-wise lr decay 0.7.
_base_ = ['./swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px.py']

pretrained = ('work_dirs/ummae_swin-large_8xb64-accum8-amp-coslr-800e_in1k-'
              '256px/epoch_800.pth')

# model
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,  # UM-MAE Table 8
        init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=1536))

# schedule
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))  # Table 8
# the batch split is Table 8's 64 x accum 2; the official Makefile
# (finetune_mae_swin_large_256_*) uses 32 x accum 4, also 1024 per update
