# Copyright (c) um-mae contributors. All rights reserved.
"""Extractors for the detection / segmentation recipe records.

Merged into ``EXTRACTORS`` of tests/test_model_index.py: metafile ``Recipe``
key -> its value in a built det / seg config.
"""


def _train_epochs(cfg):
    """Epochs of the dataset itself (a RepeatDataset counts N times)."""
    loop = cfg.train_cfg
    if 'max_epochs' not in loop:
        return None
    times = cfg.train_dataloader.dataset.get('times', 1) \
        if cfg.train_dataloader.dataset.get('type') == 'RepeatDataset' \
        else 1
    return loop['max_epochs'] * times


def _train_iters(cfg):
    return cfg.train_cfg.get('max_iters')


def _starts_from(cfg):
    """The checkpoint the recipe starts from (whole model or backbone)."""
    return cfg.get('load_from') or cfg.get('pretrained')


def _train_size(cfg):
    for aug in cfg.model.data_preprocessor.get('batch_augments') or []:
        if 'size' in aug:
            return list(aug['size'])
    for t in cfg.train_dataloader.dataset.get('pipeline', []):
        if 'crop_size' in t:
            return list(t['crop_size'])
    return None


def _images_per_batch(cfg):
    return cfg.auto_scale_lr['base_batch_size']


TRANSFER_EXTRACTORS = {
    'Train Epochs':
    _train_epochs,
    'Train Iterations':
    _train_iters,
    'LR':
    lambda c: c.optim_wrapper.optimizer['lr'],
    'Images Per Batch':
    _images_per_batch,
    'Starts From':
    _starts_from,
    'Train Size':
    _train_size,
    'Backbone Frozen':
    lambda c: bool(c.model.backbone.get('frozen', False)),
    'Relative Position Bias':
    lambda c: c.model.backbone.get('rel_pos_bias', 'per_block'),
    'Transferred Position':
    lambda c: list(c.model.backbone.get('transferred_pos', ('abs', ))),
    'Layer Decay Rate':
    lambda c:
    (c.optim_wrapper.get('paramwise_cfg') or {}).get('layer_decay_rate', 1.0),
}
