# SimMIM PVT-Small, 400 epochs (UM-MAE Fig. 6, the SimMIM curve): the
# 200-epoch recipe with a longer schedule.
_base_ = ['./simmim_pvt-small_8xb128-accum4-amp-coslr-200e_in1k-256px.py']

# schedule: 400 epochs (UM-MAE Fig. 6), the warm-up scaled with them
param_scheduler = dict(warmup_epochs=20)  # UM-MAE B.2: 10 per 200 epochs
train_cfg = dict(max_epochs=400)
