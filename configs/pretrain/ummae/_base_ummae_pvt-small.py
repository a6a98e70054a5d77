# UM-MAE (Li et al., 2022) model on PVT-Small: compact encoder over the
# uniformly sampled 25% of 16-px tokens, 2-layer 512-wide MAE decoder,
# normalised-pixel MSE on the dropped tokens. Model-only base; the configs
# using it add data, schedule and runtime bases.

# model
model = dict(
    type='UMMAE',
    backbone=dict(
        type='UMPVT',
        arch='small',
        img_size=256,  # UM-MAE Sec. 4: pre-training at 256 px
        out_indices=-1,
        # secondary masking replaces 25% of the kept tokens by this token
        with_vis_mask_token=True),
    neck=dict(
        type='MAEPyramidDecoder',
        in_channels=512,
        img_size=256,
        patch_size=16,
        # UM-MAE Sec. 4: decoder depth 2; official models_mae_pvt.py
        # mae_pvt_small_256: 512 wide, 16 heads
        embed_dims=512,
        depth=2,
        num_heads=16,
        mlp_ratio=4.),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,  # UM-MAE Sec. 3.3; official --norm_pix_loss
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))
