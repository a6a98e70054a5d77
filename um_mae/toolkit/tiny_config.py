# Copyright (c) um-mae contributors. All rights reserved.
"""Any shipped config's model and a synthetic batch, full size or tiny.

For checks that must run every config (pre-training, ImageNet
fine-tuning, detection, segmentation) without data or a GPU: the
mixed-precision and multi-process tests and ``tools/gpu_check.py``.

* :func:`shrink_config` swaps the backbone for the tiny arch of its class
  (``'demo'`` for PVT / Swin / the windowed ViT, a 4-layer ViT for
  mmpretrain's ViT classes) and makes the modules that read it follow its
  widths; necks, heads, losses, the data preprocessor, batch augments and
  the optimizer wrapper stay as configured, at a smaller image size.
* :func:`synthetic_batch` makes what a dataloader gives ``train_step``:
  random images with the config's masks (pre-training, through its own
  mask transforms), labels (classification), boxes and instance masks
  (detection) or label maps (segmentation).
* :func:`build_model` builds the model in the config's registry scope.
"""
import copy
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

__all__ = [
    'TINY_VIT', 'config_task', 'load_config', 'shrink_config',
    'shrink_pipeline', 'build_model', 'synthetic_batch', 'train_size'
]

#: the tiny arch of the classes that take mmpretrain's ViT arch table
TINY_VIT = dict(
    embed_dims=96, num_layers=4, num_heads=4, feedforward_channels=384)
_VIT_TYPES = ('VisionTransformer', 'MAEViT', 'UMViT')


def _type(name) -> str:
    return str(name).split('.')[-1]


def config_task(cfg: Config) -> str:
    """``'pretrain'``, ``'cls'``, ``'det'`` or ``'seg'``."""
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope == 'mmdet':
        return 'det'
    if scope == 'mmseg':
        return 'seg'
    return 'cls' if _type(cfg.model.type) == 'ImageClassifier' \
        else 'pretrain'


def load_config(path: str) -> Config:
    """Load a config and import its ``custom_imports``.

    The top-level ``data_preprocessor`` joins the model, as mmengine's
    Runner does.
    """
    cfg = Config.fromfile(path)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor',
                             copy.deepcopy(cfg.data_preprocessor))
    return cfg


def train_size(cfg: Config) -> int:
    """Side of the training images of the config at full size."""
    task = config_task(cfg)
    if task == 'det':
        for aug in cfg.model.data_preprocessor.get('batch_augments') or []:
            if aug.get('size'):
                return max(aug['size'])
        return 1024  # the shorter side of mmdet's multi-scale recipes
    if task == 'seg':
        return max(cfg.model.data_preprocessor.get('size') or (512, 512))
    from .pretrain_inputs import config_input_size
    return config_input_size(cfg)


def _set_key(cfg, key: str, value) -> None:
    """Set every ``key`` of a nested config to ``value``."""
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if k == key:
                cfg[k] = value
            else:
                _set_key(v, key, value)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            _set_key(v, key, value)


def _first(cfg, key: str):
    """The first value of ``key`` in a nested config, or None."""
    if isinstance(cfg, dict):
        if key in cfg:
            return cfg[key]
        values = cfg.values()
    elif isinstance(cfg, (list, tuple)):
        values = cfg
    else:
        return None
    for value in values:
        found = _first(value, key)
        if found is not None:
            return found
    return None


def _few_rois(cfg) -> None:
    """Sample fewer proposals / RoIs: the heads keep their layers, only the
    work per image shrinks."""
    if isinstance(cfg, dict):
        if 'Sampler' in str(cfg.get('type')) and 'num' in cfg:
            cfg['num'] = 32
        for key, cap in (('nms_pre', 200), ('max_per_img', 64)):
            if isinstance(cfg.get(key), int):
                cfg[key] = min(cfg[key], cap)
        for value in cfg.values():
            _few_rois(value)
    elif isinstance(cfg, list):
        for value in cfg:
            _few_rois(value)


def _meta_backbone(backbone_cfg: dict) -> nn.Module:
    from mmpretrain.registry import MODELS
    kwargs = dict(backbone_cfg, type=_type(backbone_cfg['type']))
    kwargs.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            torch.device('meta'):
        return MODELS.build(kwargs)


def _out_channels(backbone: nn.Module) -> List[int]:
    """Channels of the maps a backbone returns (PVT / Swin: per stage in
    ``out_indices``; ViTs: one map per picked block, all of one width)."""
    if hasattr(backbone, 'num_features'):  # Swin
        stages = list(backbone.num_features)
    elif isinstance(backbone.embed_dims, (list, tuple)):  # PVT
        stages = list(backbone.embed_dims)
    else:
        out = getattr(backbone, 'out_indices', [-1])
        return [backbone.embed_dims] * len(out)
    return [stages[i] for i in backbone.out_indices]


def shrink_config(cfg: Config, size: int = 64) -> Config:
    """The config with the backbone's tiny arch, in place.

    The backbone keeps its type and options (masking mode, windows,
    checkpointing, frozen) but loads no checkpoint and has no stochastic
    depth; the necks and heads
    that read it take its widths; images are ``size`` pixels (batch
    augments, crop sizes, slide windows, every ``img_size``). Detectors
    sample fewer RoIs. Everything else is the config's.

    Args:
        cfg (Config): From :func:`load_config`.
        size (int): Image side. Defaults to 64.

    Returns:
        Config: ``cfg``.
    """
    model = cfg.model
    backbone = model.backbone
    vit = _type(backbone.type) in _VIT_TYPES
    backbone.arch = copy.deepcopy(TINY_VIT) if vit else 'demo'
    backbone.pop('init_cfg', None)
    # no stochastic depth: the configs that differ only in its rate (e.g.
    # the ViT-B / ViT-L arms of one detector) build the same tiny model
    if 'drop_path_rate' in backbone:
        backbone.drop_path_rate = 0.
    _set_key(model, 'img_size', size)
    if vit:  # mmpretrain's ViTs default to 224 px without the key
        backbone.img_size = size
    neck = model.get('neck')
    if config_task(cfg) == 'pretrain':
        last = _out_channels(_meta_backbone(backbone))[-1]
        for key in ('in_channels', 'embed_dim'):
            if key in neck:
                neck[key] = last
        if 'num_patches' in neck or 'MAEPretrainDecoder' in str(neck.type):
            # MAE's decoder position table (196 patches without the key)
            neck.num_patches = (size // neck.get('patch_size', 16))**2
        return cfg
    channels = _out_channels(_meta_backbone(backbone))
    first = neck[0] if isinstance(neck, list) else neck
    if isinstance(first, dict) and 'embed_dim' in first:
        # a ViT pyramid keeps the width at every level
        first.embed_dim = channels[-1]
        channels = [channels[-1]] * 4
        if isinstance(neck, list):
            fpn = neck[1]
            fpn.in_channels = [channels[-1]] * len(fpn.in_channels)
    elif isinstance(first, dict) and isinstance(
            first.get('in_channels'), (list, tuple)):
        first.in_channels = channels
    head = model.get('head')
    if isinstance(head, dict) and isinstance(head.get('in_channels'), int):
        head.in_channels = channels[-1]
    for key in ('decode_head', 'auxiliary_head'):
        head = model.get(key)
        if isinstance(head, dict) and 'in_channels' in head:
            if isinstance(head.in_channels, (list, tuple)):
                head.in_channels = channels
            else:
                head.in_channels = channels[head.get('in_index', -1)]
    preprocessor = model.get('data_preprocessor') or {}
    for aug in preprocessor.get('batch_augments') or []:
        if 'size' in aug:
            aug['size'] = (size, size)
    if preprocessor.get('size') is not None:
        preprocessor['size'] = (size, size)
    test_cfg = model.get('test_cfg')
    if isinstance(test_cfg, dict) and test_cfg.get('mode') == 'slide':
        test_cfg.update(
            crop_size=(size, size), stride=(size * 3 // 4, size * 3 // 4))
    _few_rois(model.get('train_cfg'))
    return cfg


def _scaled(value, factor: float):
    if isinstance(value, int):
        return max(1, round(value * factor))
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled(v, factor) for v in value)
    return value


def shrink_pipeline(cfg: Config, size: int) -> Config:
    """Scale the image sizes of the training pipeline, in place.

    Every ``scale`` / ``crop_size`` of the training transforms is scaled by
    ``size`` over the config's training size (:func:`train_size`), so that
    a run on real files makes the images :func:`shrink_config` expects.
    Call it before :func:`shrink_config`.

    Args:
        cfg (Config): From :func:`load_config`.
        size (int): The new training size.

    Returns:
        Config: ``cfg``.
    """
    from .pretrain_inputs import train_pipeline
    factor = size / train_size(cfg)
    for transform in train_pipeline(cfg):
        for key in ('scale', 'crop_size'):
            if key in transform:
                transform[key] = _scaled(transform[key], factor)
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's scope (weights initialised)."""
    from mmengine.registry import MODELS
    scope = cfg.get('default_scope', 'mmpretrain')
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.init_weights()
    return model


def _det_batch(cfg, size: int, batch_size: int, seed: int) -> dict:
    from mmdet.testing import demo_mm_inputs
    with_semantic = 'semantic_head' in cfg.model.get('roi_head', {})
    np_state = np.random.get_state()
    np.random.seed(seed)
    try:
        data = demo_mm_inputs(
            batch_size=batch_size,
            image_shapes=[(3, size, size)] * batch_size,
            num_items=[3] * batch_size,
            num_classes=_first(cfg.model, 'num_classes') or 80,
            with_mask=True,
            with_semantic=with_semantic)
    finally:
        np.random.set_state(np_state)
    if with_semantic:  # mmdet's demo map is one pixel short of the image
        for sample in data['data_samples']:
            seg = sample.gt_sem_seg.sem_seg
            sample.gt_sem_seg.sem_seg = torch.nn.functional.pad(
                seg, (0, size - seg.shape[-1], 0, size - seg.shape[-2]),
                value=255)
    return data


def _seg_batch(cfg, size: int, batch_size: int, seed: int) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    num_classes = cfg.model.decode_head.num_classes
    samples = []
    for _ in range(batch_size):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size), generator=gen))
        sample.set_metainfo(
            dict(img_shape=(size, size), ori_shape=(size, size)))
        samples.append(sample)
    inputs = [
        torch.randint(
            0, 256, (3, size, size), dtype=torch.uint8, generator=gen)
        for _ in range(batch_size)
    ]
    return dict(inputs=inputs, data_samples=samples)


def _cls_batch(cfg, size: int, batch_size: int, seed: int) -> dict:
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    num_classes = cfg.model.head.num_classes
    inputs = [
        torch.randint(
            0, 256, (3, size, size), dtype=torch.uint8, generator=gen)
        for _ in range(batch_size)
    ]
    labels = torch.randint(0, num_classes, (batch_size, ), generator=gen)
    return dict(
        inputs=inputs,
        data_samples=[DataSample().set_gt_label(int(i)) for i in labels])


def synthetic_batch(cfg: Config,
                    size: Optional[int] = None,
                    batch_size: int = 2,
                    seed: int = 0) -> dict:
    """A collated batch of random data for ``model.train_step``.

    Args:
        cfg (Config): From :func:`load_config` (and maybe
            :func:`shrink_config`).
        size (int, optional): Image side; None: :func:`train_size`.
        batch_size (int): Images. Defaults to 2.
        seed (int): Seed of the images, labels and masks. Defaults to 0.

    Returns:
        dict: ``dict(inputs=..., data_samples=...)``.
    """
    size = size or train_size(cfg)
    task = config_task(cfg)
    if task == 'pretrain':
        from .pretrain_inputs import build_synthetic_batch
        scope = cfg.get('default_scope', 'mmpretrain')
        with DefaultScope.overwrite_default_scope(scope):
            return build_synthetic_batch(cfg, batch_size, size, seed)
    return dict(
        det=_det_batch, seg=_seg_batch, cls=_cls_batch)[task](cfg, size,
                                                              batch_size, seed)
