# Fine-tune the Swin-T pre-trained with a 20% secondary masking ratio
# (UM-MAE Table 2): the UM-MAE Swin-T fine-tuning from that checkpoint.
_base_ = ['./swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px.py']

pretrained = ('work_dirs/'
              'ummae_swin-tiny_sm20_8xb128-accum4-amp-coslr-200e_in1k-256px/'
              'epoch_200.pth')

# model
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
