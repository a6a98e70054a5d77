# Runtime of the pre-training configs: mmpretrain's, plus um-mae's hooks,
# checkpoints written before the old ones are deleted, a fixed seed and
# automatic resumption from the work dir.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    './um_mae_runtime.py',
]

default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook', interval=10,
        max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
# a restarted job continues from the latest checkpoint of its work dir
resume = True
