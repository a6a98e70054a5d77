# Copyright (c) um-mae contributors. All rights reserved.
"""Inputs of a pre-training config, for the tools that run it.

Load a pre-training config (its ``custom_imports`` and ``default_scope``,
optionally at another input size), build its model, and make a batch:
images go through the config's own mask transforms (e.g.
``UniformMaskGenerator``) and ``PackInputs``, as a dataloader would give
them to ``model.train_step``. Used by the benchmark
(:mod:`um_mae.toolkit.benchmark`) and by the reconstruction figure
(``tools/visualize_reconstruction.py``).

Only relative imports from ``um_mae``: the benchmark's ``--checkout``
worker loads this package from its own checkout by path.
"""
import copy
import os
from typing import List, Optional, Sequence

import numpy as np
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

__all__ = [
    'quiet_logger', 'load_pretrain_config', 'train_pipeline',
    'config_input_size', 'build_pretrain_model', 'pack_images',
    'build_synthetic_batch'
]


def quiet_logger() -> None:
    """Make a WARNING-level mmengine logger current (no init-weight logs)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('um_mae_benchmark', log_level='WARNING')


def _set_input_size(model_cfg, size: int) -> None:
    """Point every ``img_size`` (and MAE's ``num_patches``) at ``size``."""
    if isinstance(model_cfg, dict):
        patch = model_cfg.get('patch_size', 16)
        for key, value in model_cfg.items():
            if key == 'img_size':
                model_cfg[key] = size
            elif key == 'num_patches':
                model_cfg[key] = (size // patch)**2
            else:
                _set_input_size(value, size)
    elif isinstance(model_cfg, (list, tuple)):
        for item in model_cfg:
            _set_input_size(item, size)


def load_pretrain_config(path: str,
                         input_size: Optional[int] = None,
                         cfg_options: Optional[dict] = None) -> Config:
    """Load a pre-training config and register its modules.

    Args:
        path (str): Config file.
        input_size (int, optional): Input side; every ``img_size`` of the
            model config (and ``num_patches`` of an MAE decoder) is set to
            it. None keeps the config's. Defaults to None.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.

    Returns:
        Config: The config, with ``default_scope`` initialised.
    """
    if not os.path.isfile(path):
        raise ValueError(f'config {path!r} does not exist; pass a file '
                         'under configs/pretrain/')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    import_modules_from_strings(['um_mae'])
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if input_size is not None:
        _set_input_size(cfg.model, input_size)
    # as mmengine's Runner: a top-level data_preprocessor joins the model
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg


def train_pipeline(cfg: Config) -> List[dict]:
    """The training pipeline, looked up through dataset wrappers."""
    ds = cfg.train_dataloader.dataset
    while 'pipeline' not in ds and isinstance(ds.get('dataset'), dict):
        ds = ds.dataset
    return list(ds.get('pipeline', []))


def config_input_size(cfg: Config) -> int:
    """Side of the training crop in the config's pipeline (default 224)."""
    for t in train_pipeline(cfg):
        scale = t.get('scale', t.get('crop_size'))
        if 'Crop' in str(t.get('type')) and scale is not None:
            return scale if isinstance(scale, int) else scale[0]
    return 224


def build_pretrain_model(cfg: Config) -> nn.Module:
    """Build the config's model (a copy of ``cfg.model``; weights not
    initialised).

    Args:
        cfg (Config): Config from :func:`load_pretrain_config`.

    Returns:
        nn.Module: The algorithm.
    """
    from mmpretrain.registry import MODELS
    return MODELS.build(copy.deepcopy(cfg.model))


def pack_images(cfg: Config,
                images: Sequence[np.ndarray],
                seed: int = 0) -> dict:
    """Run the config's mask transforms and ``PackInputs`` on images.

    The transforms of the training pipeline whose type contains ``Mask``
    (e.g. ``UniformMaskGenerator``) and its ``PackInputs`` run on each
    image; loading and augmentation are skipped.

    Args:
        cfg (Config): Config from :func:`load_pretrain_config`.
        images (Sequence[np.ndarray]): uint8 ``(H, W, 3)`` images in the
            channel order of ``LoadImageFromFile`` (BGR).
        seed (int): Seed of numpy's generator, which the mask generators
            draw from; restored afterwards. Defaults to 0.

    Returns:
        dict: ``dict(inputs=uint8 (N, 3, H, W), data_samples=[...])``, what
        a dataloader gives ``model.train_step``.
    """
    from mmpretrain.registry import TRANSFORMS
    keep = [
        t for t in train_pipeline(cfg)
        if 'Mask' in str(t['type']) or str(t['type']).endswith('PackInputs')
    ]
    if not keep or not str(keep[-1]['type']).endswith('PackInputs'):
        keep.append(dict(type='PackInputs'))
    transforms = [TRANSFORMS.build(copy.deepcopy(t)) for t in keep]
    np_state = np.random.get_state()
    np.random.seed(seed)
    try:
        samples = []
        for img in images:
            results = dict(
                img=img,
                img_shape=img.shape[:2],
                ori_shape=img.shape[:2],
                sample_idx=len(samples))
            for t in transforms:
                results = t(results)
            samples.append(results)
    finally:
        np.random.set_state(np_state)
    return default_collate(samples)


def build_synthetic_batch(cfg: Config,
                          batch_size: int,
                          input_size: int,
                          seed: int = 0) -> dict:
    """A collated batch of random images with the config's masks.

    Args:
        cfg (Config): Config from :func:`load_pretrain_config`.
        batch_size (int): Images in the batch.
        input_size (int): Image side in pixels.
        seed (int): Seed of the images and masks. Defaults to 0.

    Returns:
        dict: See :func:`pack_images`.
    """
    rng = np.random.RandomState(seed)
    images = [
        rng.randint(0, 256, (input_size, input_size, 3), np.uint8)
        for _ in range(batch_size)
    ]
    return pack_images(cfg, images, seed)
