# UM-MAE pre-training of Swin-T on ImageNet-1k at 256 px for 200 epochs:
# the PVT-Small recipe (same batch, lr, warm-up and decoder in the official
# Makefile pretrain_mae_swin_tiny_256_mask_vmr025_200e) with the Swin
# encoder.
_base_ = ['./ummae_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px.py']

# model: windows of 16 on the image are windows of 8 on the compact map
# (compact_window_size defaults to window_size // 2); the 2-layer 512-wide
# decoder keeps mlp_ratio 4, the encoder's, as the official Swin decoder
model = dict(
    backbone=dict(
        _delete_=True,
        type='UMSwinTransformer',
        arch='tiny',
        window_size=16,  # official models_mae_swin.py (8 on the compact map)
        out_indices=-1,
        with_vis_mask_token=True),
    neck=dict(in_channels=768))
