# The UM-MAE demo plus a test hook that writes every rank's losses (a
# default hook: `custom_hooks` would replace the runtime base's list).
_base_ = ['../../../configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py']
custom_imports = dict(
    imports=['um_mae', 'um_mae.engine.checkpoint_loading', 'loss_recorder'])
default_hooks = dict(loss_recorder=dict(type='mmpretrain.LossRecorderHook'))
randomness = dict(seed=7, deterministic=True)
