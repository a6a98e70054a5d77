# Fine-tune the SimMIM Swin-T (UM-MAE Table 3; official Makefile
# finetune_simmim_swin_tiny_256_200e_100e): the UM-MAE Swin-T fine-tuning
# from the SimMIM checkpoint.
_base_ = ['./swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px.py']

pretrained = ('work_dirs/'
              'simmim_swin-tiny_8xb64-accum8-amp-coslr-200e_in1k-256px/'
              'epoch_200.pth')

# model
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
