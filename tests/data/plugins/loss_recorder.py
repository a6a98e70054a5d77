# Copyright (c) um-mae contributors. All rights reserved.
"""Test-only hook: every rank appends its training loss to a json file."""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class LossRecorderHook(Hook):

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        path = osp.join(runner.work_dir, f'losses_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(
                json.dumps(dict(iter=runner.iter + 1,
                                loss=float(outputs['loss']))) + '\n')
