# Copyright (c) um-mae contributors. All rights reserved.
"""Segmentation (UperNet) and ImageNet fine-tuning configs.

Each config's recipe is checked against the UM-MAE paper; then its model
runs a loss step (and UperNet a slide-inference step) with the backbone
swapped for its tiny arch and small images, so heads, losses, batch
augments and the layer-decay optimizer run as configured. Checkpoints
flow pre-training -> fine-tuning -> segmentation through the configs'
``CheckedPretrained`` init with ``prefix='backbone.'``.
"""
import copy
import glob
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import um_mae  # noqa: F401
from um_mae.engine.optimizers import layer_depths

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _configs(folder):
    paths = sorted(
        p for p in glob.glob(
            osp.join(REPO, 'configs', folder, '**', '*.py'), recursive=True)
        if '_base_' not in p)
    return paths, [osp.relpath(p, osp.join(REPO, 'configs')) for p in paths]


SEG, SEG_IDS = _configs('seg')
FT, FT_IDS = _configs('finetune')
PRETRAIN_DEMO = {
    'UMPVT': 'ummae_pvt-demo_1xb8-10e_demo-128px.py',
    'UMSwinTransformer': 'ummae_swin-demo_1xb8-10e_demo-128px.py',
    'UMViT': 'ummae_vit-tiny-p16_1xb8-10e_demo-128px.py',
}
# the pre-training demos' input size (tables load without resizing)
SAME_SIZE = {
    'UMPVT': dict(img_size=128),
    'UMSwinTransformer': dict(),
    'UMViT': dict(img_size=128),
}
# tiny stand-ins: backbone type -> (kwargs, channels of the 4 stage maps)
TINY = {
    'UMPVT': (dict(arch='demo', img_size=64), [16, 32, 64, 128]),
    'UMSwinTransformer': (dict(arch='demo', window_size=4), [16, 32, 64, 128]),
    'WindowedViT': (dict(arch='demo', img_size=64), [32] * 4),
    # the arch of the ViT pre-training demo
    'UMViT': (dict(
        arch=dict(
            embed_dims=96, num_layers=4, num_heads=4,
            feedforward_channels=384),
        img_size=64), [96]),
}


def _type(backbone_cfg):
    return backbone_cfg['type'].split('.')[-1]


def _stage_channels(backbone):
    """Channels of the 4 stage maps of a (meta-device) backbone."""
    name = type(backbone).__name__
    if name == 'UMPVT':
        return list(backbone.embed_dims)
    if name == 'UMSwinTransformer':
        return list(backbone.num_features)
    return [backbone.embed_dims] * len(backbone.out_indices)


def _plain_bn(cfg):
    """SyncBN -> BN in a config tree (one CPU process, no process group)."""
    if isinstance(cfg, dict):
        if cfg.get('type') in ('SyncBN', 'MMSyncBN'):
            cfg['type'] = 'BN'
        for value in cfg.values():
            _plain_bn(value)
    elif isinstance(cfg, list):
        for value in cfg:
            _plain_bn(value)
    return cfg


def _registry(scope):
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


def _tiny_backbone(cfg, **extra):
    """The config's backbone with the tiny arch (same type and options)."""
    backbone = copy.deepcopy(cfg.model.backbone.to_dict())
    kwargs, channels = TINY[_type(backbone)]
    backbone.update(kwargs, drop_path_rate=0., **extra)
    backbone.pop('init_cfg', None)
    cfg.model.backbone = backbone
    return channels


def _rates(cfg):
    return cfg.optim_wrapper.paramwise_cfg.layer_decay_rate


def _cpu_optim_wrapper(cfg):
    optim_cfg = copy.deepcopy(cfg.optim_wrapper.to_dict())
    # AmpOptimWrapper needs a GPU; the param groups do not depend on it
    optim_cfg['type'] = 'OptimWrapper'
    optim_cfg.pop('loss_scale', None)
    return optim_cfg


def _check_layer_decay(model, wrapper, rate):
    depths = layer_depths(model)
    num_depths = depths['decode_head.conv_seg.weight' if hasattr(
        model, 'decode_head') else 'head.fc.weight'][1]
    groups = wrapper.optimizer.param_groups
    bottom = min(groups, key=lambda g: g['layer_id'])
    assert bottom['layer_id'] == 0
    assert bottom['lr_scale'] == pytest.approx(rate**(num_depths - 1))
    assert max(g['lr_scale'] for g in groups) == 1


# segmentation


def test_seg_configs_found():
    names = ' '.join(SEG_IDS)
    for model in ('pvt-small', 'swin-tiny', 'vit-base', 'demo'):
        assert model in names


@pytest.mark.parametrize('path', SEG, ids=SEG_IDS)
def test_seg_recipe(path):
    base = osp.basename(path)  # the checkout's folder may read 'vit'
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg'
    assert 'um_mae' in cfg.custom_imports.imports
    model = cfg.model
    assert model.decode_head.type == 'UPerHead'
    assert model.auxiliary_head.type == 'FCNHead'
    assert cfg.optim_wrapper.constructor == \
        'mmpretrain.UMLayerDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    # the heads take what the full-size backbone gives
    kwargs = copy.deepcopy(model.backbone.to_dict())
    kwargs.pop('init_cfg', None)
    with torch.device('meta'):
        backbone = _registry('mmseg').build(kwargs)
    channels = _stage_channels(backbone)
    if model.get('neck'):  # a ViT pyramid: the width of every level
        assert model.neck.embed_dim == channels[-1]
    assert list(model.decode_head.in_channels) == channels
    assert model.auxiliary_head.in_channels == \
        channels[model.auxiliary_head.in_index]
    if 'demo' in base:
        return
    # UM-MAE paper B.4
    assert cfg.crop_size == (512, 512)
    assert model.data_preprocessor.size == (512, 512)
    assert model.decode_head.num_classes == 150
    assert model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 1500)
    assert (poly.type, poly.begin, poly.end, poly.power) == \
        ('PolyLR', 1500, 160000, 1.0)
    assert cfg.train_cfg.max_iters == 160000
    assert _rates(cfg) == (0.65 if 'vit' in base else 1.0)
    init = model.backbone.init_cfg
    assert init.type == 'CheckedPretrained'
    assert init.checkpoint == cfg.pretrained
    assert init.prefix == 'backbone.'


@pytest.mark.parametrize('path', SEG, ids=SEG_IDS)
def test_seg_loss_and_slide_inference_with_tiny_backbone(path):
    cfg = Config.fromfile(path)
    channels = _tiny_backbone(cfg)
    model_cfg = cfg.model
    if model_cfg.get('neck'):
        model_cfg.neck.embed_dim = channels[-1]
    model_cfg.decode_head.update(in_channels=channels, channels=16)
    model_cfg.auxiliary_head.update(
        in_channels=channels[model_cfg.auxiliary_head.in_index], channels=8)
    model_cfg.data_preprocessor.size = (64, 64)
    model_cfg.test_cfg.update(
        mode='slide', crop_size=(64, 64), stride=(48, 48))
    model = _registry('mmseg').build(_plain_bn(model_cfg))
    wrapper = build_optim_wrapper(model, _cpu_optim_wrapper(cfg))
    _check_layer_decay(model, wrapper, _rates(cfg))

    torch.manual_seed(0)
    from mmseg.structures import SegDataSample
    num_classes = model_cfg.decode_head.num_classes
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, 64, 64)))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(sample)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)] * 2,
        data_samples=samples)
    model.train()
    data = model.data_preprocessor(data, training=True)
    losses = model(**data, mode='loss')
    assert set(losses) >= {'decode.loss_ce', 'aux.loss_ce'}
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    wrapper.backward(loss)
    assert all(p.grad is not None for p in model.backbone.parameters()
               if p.requires_grad)
    before = model.backbone.patch_embed.projection.weight.clone()
    wrapper.step()
    assert not torch.equal(before,
                           model.backbone.patch_embed.projection.weight)

    # slide inference over a 96x80 image (2 x 2 windows of 64)
    model.eval()
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=(96, 80), ori_shape=(96, 80)))
    with torch.no_grad():
        out = model.test_step(
            dict(
                inputs=[torch.randint(0, 256, (3, 96, 80), dtype=torch.uint8)],
                data_samples=[sample]))
    assert out[0].pred_sem_seg.data.shape == (1, 96, 80)
    assert out[0].seg_logits.data.shape == (num_classes, 96, 80)


# ImageNet fine-tuning


def test_finetune_configs_found():
    names = ' '.join(FT_IDS)
    for model in ('pvt-small', 'swin-tiny', 'swin-large', 'vit-base'):
        assert model in names


@pytest.mark.parametrize('path', FT, ids=FT_IDS)
def test_finetune_recipe(path):
    """UM-MAE paper, Table 8."""
    base = osp.basename(path)  # the checkout's folder may read 'vit'
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    model = cfg.model
    assert model.backbone.out_type == 'avg_featmap'
    assert model.head.type == 'LinearClsHead'
    assert model.head.loss.label_smooth_val == 0.1
    assert [(a.type, a.alpha) for a in model.train_cfg.augments] == \
        [('Mixup', 0.8), ('CutMix', 1.0)]
    init = model.backbone.init_cfg
    # every backbone loads with the checks (UMViT, not mmpretrain's
    # VisionTransformer, which re-draws pos_embed after such a load)
    assert (init.type, init.checkpoint, init.prefix) == \
        ('CheckedPretrained', cfg.pretrained, 'backbone.')
    if 'vit' in base:
        assert model.backbone.type == 'UMViT'
        assert model.backbone.learnable_pos_embed

    # 8 GPUs x 64 x accum 2 = 1024; lr 5e-4 x 1024 / 256
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.optim_wrapper.accumulative_counts == 2
    assert cfg.auto_scale_lr.base_batch_size == 8 * 64
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay,
            optimizer.betas) == ('AdamW', 5e-4 * 1024 / 256, 0.05, (0.9,
                                                                    0.999))
    # the official lr_sched.py (tests/test_engine/test_schedulers.py)
    sched = cfg.param_scheduler
    assert (sched.type, sched.warmup_epochs, sched.eta_min) == \
        ('WarmupHalfCosineLR', 5, 1e-6)
    assert cfg.train_cfg.max_epochs == 100
    large = 'swin-large' in base
    assert model.backbone.drop_path_rate == (0.2 if large else 0.1)
    expected_rate = {
        'pvt-small': 0.85,
        'swin-tiny': 0.85,
        'swin-large': 0.7,
        'vit-base': 0.8
    }
    assert _rates(cfg) == next(rate for name, rate in expected_rate.items()
                               if name in base)

    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    size = 224 if 'vit' in base else 256
    assert pipeline['RandomResizedCrop'].scale == size
    rand_aug = pipeline['RandAugment']
    assert (rand_aug.magnitude_level, rand_aug.magnitude_std) == (9, 0.5)
    assert pipeline['RandomErasing'].erase_prob == 0.25
    test_pipeline = {t.type: t for t in cfg.val_dataloader.dataset.pipeline}
    assert test_pipeline['CenterCrop'].crop_size == size
    # official util/datasets.py: resize to size / crop_pct, crop_pct 1
    # above 224 px and 224 / 256 at 224 px: 256 either way
    assert test_pipeline['ResizeEdge'].scale == 256
    assert cfg.test_dataloader.dataset.pipeline == \
        cfg.val_dataloader.dataset.pipeline


@pytest.mark.parametrize('path', FT, ids=FT_IDS)
def test_finetune_loss_step_with_tiny_backbone(path):
    cfg = Config.fromfile(path)
    channels = _tiny_backbone(cfg)
    cfg.model.head.in_channels = channels[-1]
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = _registry('mmpretrain').build(cfg.model)
    wrapper = build_optim_wrapper(model, _cpu_optim_wrapper(cfg))
    assert wrapper._accumulative_counts == 2
    _check_layer_decay(model, wrapper, _rates(cfg))

    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)] * 2,
        data_samples=[DataSample().set_gt_label(i) for i in (3, 7)])
    data = model.data_preprocessor(data, training=True)
    # Mixup / CutMix turned the labels into soft 1000-way scores
    assert data['data_samples'][0].gt_score.shape == (1000, )
    model.train()
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters()
               if p.requires_grad)


# checkpoints: pre-training -> fine-tuning -> segmentation


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _init_from(model, checkpoint):
    """``init_weights`` with ``checkpoint``, returning the logged report."""
    model.backbone.init_cfg['checkpoint'] = checkpoint
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    # CheckedPretrained's report, or mmengine's key mismatch warning
    reports = [
        m for m in handler.messages
        if m.startswith('Loaded ') or 'do not match exactly' in m
    ]
    assert len(reports) == 1, handler.messages
    return reports[0]


def _assert_backbone_from(model, source_backbone):
    """Every backbone tensor the source has was loaded, none re-drawn."""
    target = model.backbone.state_dict()
    shared = [k for k in source_backbone if k in target]
    assert len(shared) > 0.5 * len(target)
    assert 'pos_embed' in shared or 'UMSwin' in type(model.backbone).__name__
    for key in shared:
        torch.testing.assert_close(target[key], source_backbone[key], msg=key)


def _finetune_config(kind):
    return next(p for p in FT if kind in p)


def _seg_config(kind):
    return next(p for p in SEG if kind in p and 'demo' not in p)


@pytest.mark.dense
@pytest.mark.parametrize('kind,backbone', [
    ('pvt-small', 'UMPVT'),
    ('swin-tiny', 'UMSwinTransformer'),
    ('vit-base', 'UMViT'),
])
def test_pretrained_and_finetuned_checkpoints_load_downstream(
        tmp_path, kind, backbone):
    # a UM-MAE pre-training checkpoint (backbone. + neck. + head. keys)
    pre_cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pretrain', 'ummae',
                 PRETRAIN_DEMO[backbone]))
    torch.manual_seed(0)
    ummae = _registry('mmpretrain').build(pre_cfg.model)
    ummae.init_weights()
    pre_ckpt = str(tmp_path / 'pretrain.pth')
    torch.save(dict(state_dict=ummae.state_dict()), pre_ckpt)
    pre_backbone = ummae.backbone.state_dict()

    # ... fine-tuned on ImageNet with the fine-tuning config
    cfg = Config.fromfile(_finetune_config(kind))
    _tiny_backbone(cfg, **SAME_SIZE[backbone])
    cfg.model.backbone.init_cfg = copy.deepcopy(
        Config.fromfile(_finetune_config(kind)).model.backbone.init_cfg)
    cfg.model.head.in_channels = TINY[_type(cfg.model.backbone)][1][-1]
    classifier = _registry('mmpretrain').build(cfg.model)
    report = _init_from(classifier, pre_ckpt)
    assert 'filled' in report
    if backbone == 'UMViT':  # the pre-training final norm is left out
        assert 'ln1.weight' in report.split('not used by UMViT')[1]
    _assert_backbone_from(classifier, pre_backbone)
    ft_ckpt = str(tmp_path / 'finetuned.pth')
    torch.save(dict(state_dict=classifier.state_dict()), ft_ckpt)

    # ... and either checkpoint initializes the segmentation backbone
    cfg = Config.fromfile(_seg_config(kind))
    init_cfg = copy.deepcopy(cfg.model.backbone.init_cfg)
    channels = _tiny_backbone(cfg, **SAME_SIZE[backbone])
    if backbone == 'UMViT':  # the adaptor on the pre-trained ViT's arch
        cfg.model.backbone.arch = copy.deepcopy(pre_cfg.model.backbone.arch)
        channels = [pre_cfg.model.backbone.arch.embed_dims] * 4
        cfg.model.neck.update(
            embed_dim=channels[0], norm_cfg=dict(type='GN', num_groups=8))
    cfg.model.backbone.init_cfg = init_cfg
    cfg.model.decode_head.update(in_channels=channels, channels=16)
    cfg.model.auxiliary_head.update(in_channels=channels[2], channels=8)
    for source, source_backbone in ((pre_ckpt, pre_backbone),
                                    (ft_ckpt,
                                     classifier.backbone.state_dict())):
        segmentor = _registry('mmseg').build(_plain_bn(cfg.model))
        report = _init_from(segmentor, source)
        assert f'Loaded {source}' in report
        _assert_backbone_from(segmentor, source_backbone)
        if source == ft_ckpt and backbone != 'UMViT':
            # the classifier's pooled-feature norm has no use here
            assert 'fc_norm' in report
