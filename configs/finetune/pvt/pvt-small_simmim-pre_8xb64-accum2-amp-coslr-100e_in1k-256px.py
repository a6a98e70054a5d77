# Fine-tune the SimMIM PVT-Small (UM-MAE Table 3; official Makefile
# finetune_simmim_pvt_small_256_200e_100e): the UM-MAE PVT-Small fine-tuning
# from the SimMIM checkpoint.
_base_ = ['./pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px.py']

pretrained = ('work_dirs/'
              'simmim_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px/'
              'epoch_200.pth')

# model
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
