# What every um-mae config declares, whatever its toolbox: the package's
# modules and the hooks the guarantees of docs/reliability.md rest on. They
# are declared here, not added by tools/train.py, so they also hold under
# `Runner.from_cfg` and other launchers. Inherit this file next to the
# toolbox's runtime base; a config that sets its own `custom_hooks` must
# list these again (tools/train.py warns when one is missing).
# um_mae registers its modules; um_mae.engine.checkpoint_loading makes
# mmengine read checkpoints without unpickling code (an explicit step)
custom_imports = dict(
    imports=['um_mae', 'um_mae.engine.checkpoint_loading'],
    allow_failed_imports=False)
custom_hooks = [
    # the loss is averaged over processes before it is logged or checked
    dict(type='mmpretrain.RankMeanLossHook'),
    # the first NaN / inf loss stops training before a checkpoint is saved
    dict(type='mmpretrain.FiniteLossHook'),
    # random generators are saved in checkpoints and restored by --resume
    dict(type='mmpretrain.RNGStateHook'),
    # the top-level `pretrained` field is the checkpoint that is loaded
    dict(type='mmpretrain.PretrainedHook'),
    # COCO annotations the toolbox drops in silence are counted in the log
    dict(type='mmpretrain.DataSummaryHook'),
    # a resumed run with nothing left to train says so (resume = True)
    dict(type='mmpretrain.TrainingNoticesHook'),
]
# DDP: every parameter of the shipped models that trains gets a gradient in
# every step (tests/test_multiprocess.py runs each model in 2 processes), so
# DDP need not search the graph for unused ones; a config whose model skips
# some parameters in a step sets True and says why
find_unused_parameters = False
