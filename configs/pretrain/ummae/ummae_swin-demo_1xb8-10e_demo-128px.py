# UM-MAE on a tiny Swin, trained on the CPU demo images (128 px) in a few
# minutes: `python tools/make_demo_data.py pretrain` once, then
# `python tools/train.py <this file>`. The loss should fall.
_base_ = ['./ummae_pvt-demo_1xb8-10e_demo-128px.py']

# model: 128 px -> compact maps of 16, 8, 4 and 2 patches, windows of 8
# (shifted in the first stage, global after)
model = dict(
    backbone=dict(
        _delete_=True,
        type='UMSwinTransformer',
        arch='demo',
        window_size=16,
        out_indices=-1,
        with_vis_mask_token=True),
    neck=dict(in_channels=128))
