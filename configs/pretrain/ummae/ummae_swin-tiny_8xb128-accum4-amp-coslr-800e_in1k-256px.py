# UM-MAE Swin-T, 800 epochs: the 200-epoch recipe with a longer schedule.
_base_ = ['./ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_in1k-256px.py']

# schedule
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=790,
        eta_min=0.,
        by_epoch=True,
        begin=10,
        end=800,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=800)
