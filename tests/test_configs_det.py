# Copyright (c) um-mae contributors. All rights reserved.
"""Detection configs: recipe, wiring, and a loss step of every detector.

The full-size backbones are built on the ``meta`` device (no memory) to
check that the FPN ``in_channels`` of each config are the channels the
backbone returns; the loss step swaps in the backbone's tiny ``'demo'``
arch and small images, so the rest of the detector (neck, heads, losses,
batch augments) runs as configured.
"""
import copy
import functools
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import um_mae  # noqa: F401
from um_mae.models.backbones import UMPVT, UMSwinTransformer, WindowedViT

pytestmark = pytest.mark.dense

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', 'det', '**', '*.py'), recursive=True)
    if '_base_' not in p)
IDS = [osp.relpath(p, osp.join(REPO, 'configs', 'det')) for p in DET_CONFIGS]
BACKBONES = {
    'mmpretrain.UMPVT': UMPVT,
    'mmpretrain.UMSwinTransformer': UMSwinTransformer,
    'mmpretrain.WindowedViT': WindowedViT,
}


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Build in mmdet's scope without leaking it into other test files."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _mmdet_models():
    from mmdet.registry import MODELS
    return MODELS


def _out_channels(backbone):
    """Channels of the maps the backbone returns, from its attributes."""
    if isinstance(backbone, UMPVT):
        per_stage = backbone.embed_dims
    elif isinstance(backbone, UMSwinTransformer):
        per_stage = backbone.num_features
    else:  # a plain ViT: one map per picked block
        return [backbone.embed_dims] * len(backbone.out_indices)
    return [per_stage[i] for i in backbone.out_indices]


def _few_rois(cfg):
    """Sample fewer proposals / RoIs (the heads keep their configured
    layers; only the amount of work per image shrinks)."""
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
    return cfg


def _first_neck(cfg):
    """The neck module that receives the backbone maps (a neck list is
    built as nn.Sequential)."""
    neck = cfg.model.neck
    return neck[0] if isinstance(neck, list) else neck


def _read_maps(cfg, channels):
    """Set the neck to read backbone maps of ``channels``.

    A ViT pyramid (``embed_dim``) keeps the width at every level, so the
    FPN after it reads as many maps of that width as before.
    """
    first = _first_neck(cfg)
    if 'embed_dim' in first:
        first.embed_dim = channels[-1]
        fpn = cfg.model.neck[1]
        fpn.in_channels = [channels[-1]] * len(fpn.in_channels)
    else:
        first.in_channels = channels


def _backbone_kwargs(cfg):
    kwargs = copy.deepcopy(cfg.model.backbone.to_dict())
    cls = BACKBONES[kwargs.pop('type')]
    kwargs.pop('init_cfg', None)
    return cls, kwargs


def test_det_configs_found():
    names = ' '.join(IDS)
    for method in ('gfl/', 'mask_rcnn/', 'htc/'):
        assert method in names


@pytest.mark.parametrize('path', DET_CONFIGS, ids=IDS)
def test_neck_matches_full_size_backbone(path):
    cfg = Config.fromfile(path)
    assert 'um_mae' in cfg.custom_imports.imports
    cls, kwargs = _backbone_kwargs(cfg)
    with torch.device('meta'):
        backbone = cls(**kwargs)
    channels = _out_channels(backbone)
    first = _first_neck(cfg)
    if 'embed_dim' in first:  # a ViT pyramid, then the FPN
        with torch.device('meta'):
            pyramid = _mmdet_models().build(first)
        simple = type(pyramid).__name__ == 'ViTSimplePyramid'
        assert channels == [first.embed_dim
                            ] * (1 if simple else len(pyramid.rescales))
        assert list(cfg.model.neck[1].in_channels) == \
            [first.embed_dim] * len(pyramid.rescales)
    else:
        assert list(first.in_channels) == channels
    if 'demo' not in path:
        # the checkpoint is one config field (`pretrained`, None for the
        # random arm), loaded with the checks
        init = cfg.model.backbone.init_cfg
        assert init.type == 'CheckedPretrained'
        assert 'pretrained' in cfg
        assert init.prefix == 'backbone.'


def _tiny_detector(cfg):
    """The config's detector with the backbone's tiny arch, 96-px batches
    and fewer RoIs (the rest as configured)."""
    cls, kwargs = _backbone_kwargs(cfg)
    kwargs.update(arch='demo', drop_path_rate=0.)
    kwargs.pop('with_cp', None)
    if cls is UMPVT:
        kwargs['img_size'] = 64
    backbone_cfg = dict(type=cfg.model.backbone.type, **kwargs)
    cfg.model.backbone = backbone_cfg
    with torch.device('meta'):
        tiny = cls(**kwargs)
    _read_maps(cfg, _out_channels(tiny))
    preprocessor = cfg.model.data_preprocessor
    for aug in preprocessor.get('batch_augments') or []:
        aug.size = (96, 96)  # instead of 1024

    _few_rois(cfg.model.get('train_cfg'))
    # torch's SyncBN runs as BN in one process without a process group
    return _mmdet_models().build(cfg.model)


def _batch(model, with_semantic=False):
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 96, 64), (3, 64, 96)],
        num_items=[2, 1],
        num_classes=3,
        with_mask=True,
        with_semantic=with_semantic)
    data = model.data_preprocessor(data, training=True)
    assert data['inputs'].shape[-2:] == (96, 96)
    return data


@pytest.mark.slow  # a loss step of every detector
@pytest.mark.parametrize('path', DET_CONFIGS, ids=IDS)
def test_loss_step_with_tiny_backbone(path):
    cfg = Config.fromfile(path)
    model = _tiny_detector(cfg)
    model.train()
    torch.manual_seed(0)
    data = _batch(model, 'semantic_head' in cfg.model.get('roi_head', {}))
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    params = list(model.backbone.parameters())
    if cfg.model.backbone.get('frozen'):
        assert all(not p.requires_grad and p.grad is None for p in params)
    else:
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in params if p.requires_grad)


@pytest.mark.parametrize(
    'type_,kwargs,channels,sizes',
    [
        ('mmpretrain.UMPVT', dict(arch='demo', out_indices=(0, 1, 2, 3)),
         [16, 32, 64, 128], [16, 8, 4, 2]),
        ('mmpretrain.UMSwinTransformer',
         dict(arch='demo', out_indices=(0, 1, 2, 3)), [16, 32, 64, 128
                                                       ], [16, 8, 4, 2]),
        ('mmpretrain.WindowedViT', dict(arch='demo', img_size=64), [32] * 4,
         [4] * 4),  # stride 16; a pyramid neck makes strides 4 - 32
    ])
def test_backbone_builds_from_mmdet_registry(type_, kwargs, channels, sizes):
    MODELS = _mmdet_models()
    backbone = MODELS.build(dict(type=type_, **kwargs))
    outs = backbone(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == channels
    assert [o.shape[-1] for o in outs] == sizes


def test_detector_loads_checked_pretrained_backbone(tmp_path):
    src = UMPVT(arch='demo', img_size=128, learnable_pos_embed=True)
    sd = {'backbone.' + k: v for k, v in src.state_dict().items()}
    sd['neck.in_norm.weight'] = torch.ones(1)  # a pre-training checkpoint
    ckpt = str(tmp_path / 'pretrain.pth')
    torch.save(dict(state_dict=sd), ckpt)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'det', 'gfl',
                 'gfl_pvt-demo_fpn_1xb8-300it_demo-coco-128px.py'))
    cfg.model.backbone.init_cfg = dict(
        type='CheckedPretrained', checkpoint=ckpt, prefix='backbone.')
    model = _mmdet_models().build(cfg.model)
    model.init_weights()
    for key, value in src.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value)

    # a checkpoint of another size stops the run, naming the fitting arch
    cfg.model.backbone.arch = 'small'
    cfg.model.neck.in_channels = [128, 320, 512]
    model = _mmdet_models().build(cfg.model)
    with pytest.raises(ValueError, match="with arch='demo'"):
        model.init_weights()


@functools.lru_cache(maxsize=None)
def _parsed(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'det', name))


def _config(name):
    """A fresh copy of a det config (each file is parsed once)."""
    return copy.deepcopy(_parsed(name))


def test_gfl_recipe():
    # UM-MAE B.3: ViT-B at 896 x 896 (1024 did not fit), the pyramids 1024
    for arch, size in (('pvt-small', 1024), ('swin-tiny', 1024),
                       ('vit-base-p16', 896)):
        cfg = _config(f'gfl/gfl_{arch}_fpn-syncbn_8xb2-amp-lsj-{size}-25e_'
                      'coco.py')
        assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
        assert cfg.auto_scale_lr.base_batch_size == 16
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
        assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 0
        assert cfg.optim_wrapper.paramwise_cfg.bias_decay_mult == 0
        neck = cfg.model.neck
        if arch == 'vit-base-p16':  # blocks 6, 9, 12 -> strides 8, 16, 32
            assert cfg.model.backbone.out_indices == (-7, -4, -1)
            assert neck[0].type == 'mmpretrain.ViTMultiScaleAdaptor'
            assert neck[0].rescales == (2, 1, 0.5)
        else:  # the official per-stage LayerNorm + Linear(768) first
            assert neck[0].type == 'mmpretrain.StageNormProjection'
            assert neck[0].out_channels == 768
        assert neck[1].type == 'FPN' and neck[1].in_channels == [768] * 3
        assert 'pos_embed' in cfg.optim_wrapper.paramwise_cfg.custom_keys
        warmup, cosine = cfg.param_scheduler
        assert (warmup.type, warmup.end) == ('LinearLR', 2000)
        assert cosine.type == 'CosineAnnealingLR'
        assert cfg.train_cfg.max_epochs == 25
        assert cfg.model.backbone.drop_path_rate == 0.1
        resize = cfg.train_dataloader.dataset.pipeline[2]
        assert resize.ratio_range == (0.1, 2.0)
        assert resize.scale == (size, size)
        crop = cfg.train_dataloader.dataset.pipeline[3]
        assert crop.crop_size == (size, size)
        assert cfg.model.data_preprocessor.batch_augments[0].size == \
            (size, size)


def test_mask_rcnn_recipe():
    for arch, drop_path in (('vit-base-p16', 0.1), ('vit-large-p16', 0.3),
                            ('pvt-small', 0.1), ('swin-tiny', 0.1)):
        cfg = _config(f'mask_rcnn/mask-rcnn_{arch}_fpn-syncbn_32xb2-amp-'
                      'lsj-1024-100e_coco.py')
        assert cfg.model.backbone.drop_path_rate == drop_path
        assert cfg.train_dataloader.batch_size * 32 == \
            cfg.auto_scale_lr.base_batch_size == 64
        neck = cfg.model.neck
        fpn = neck[-1] if isinstance(neck, list) else neck
        assert fpn.type == 'FPN' and fpn.norm_cfg.type == 'SyncBN'
        if 'vit' in arch:  # Li et al.'s resolution modules on blocks d/4..d
            assert neck[0].type == 'mmpretrain.ViTMultiScaleAdaptor'
            assert cfg.model.backbone.get('out_indices') is None
        assert cfg.model.rpn_head.num_convs == 2
        assert cfg.model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
        assert cfg.model.roi_head.mask_head.norm_cfg.type == 'SyncBN'
        assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.999)
        assert cfg.param_scheduler[1].eta_min == 0
        pad = [
            t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Pad'
        ]
        assert pad and pad[0].size == (1024, 1024)


def test_channel_check_reads_the_first_module_of_a_neck_list():
    from um_mae.toolkit.cli import UsageError, check_model_channels
    cfg = _config('gfl/gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-25e_'
                  'coco.py')
    cls, kwargs = _backbone_kwargs(cfg)
    kwargs.update(arch='demo', img_size=64, drop_path_rate=0.)
    model = torch.nn.Module()
    model.backbone = cls(**kwargs)  # 32/64/128 channels for stages 1-3
    with pytest.raises(UsageError) as err:
        check_model_channels(model, cfg, size=64)
    assert 'model.neck[0].in_channels=[128, 320, 512]' in str(err.value)
    assert 'model.neck[0].in_channels=[32, 64, 128]' in str(err.value)
    cfg.model.neck[0].in_channels = [32, 64, 128]
    check_model_channels(model, cfg, size=64)


def _flat(d, prefix=''):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f'{prefix}{key}.'))
        else:
            out[prefix + key] = value
    return out


ARMS = {  # Li et al.'s initializations -> what each arm config may change
    'random-init': {'pretrained', 'max_epochs', 'train_cfg.max_epochs',
                    'param_scheduler'},
    'supervised-pre': {'pretrained'},
    'mocov3-pre': {'pretrained'},
    'beit-pre': {
        'pretrained', 'model.backbone.layer_scale_init_value',
        'model.backbone.transferred_pos',
        'optim_wrapper.paramwise_cfg.custom_keys.gamma.decay_mult'
    },
    'mae-pre': {'pretrained'},
}


@pytest.mark.parametrize('size', ['base', 'large'])
@pytest.mark.parametrize('arm', list(ARMS))
def test_five_arm_configs_state_only_their_differences(size, arm):
    """One base per size (the UM-MAE arm) plus one small config per arm."""
    base = _config(f'mask_rcnn/mask-rcnn_vit-{size}-p16_fpn-syncbn_32xb2-'
                   'amp-lsj-1024-100e_coco.py')
    epochs = '400e' if arm == 'random-init' else '100e'
    cfg = _config(f'mask_rcnn/mask-rcnn_vit-{size}-p16_{arm}_fpn-syncbn_'
                  f'32xb2-amp-lsj-1024-{epochs}_coco.py')
    ours, theirs = _flat(cfg.to_dict()), _flat(base.to_dict())
    changed = {
        k
        for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)
    }
    assert changed == ARMS[arm]
    assert cfg.model.backbone.drop_path_rate == \
        {'base': 0.1, 'large': 0.3}[size]
    # Li et al. 2.4: the grid centre until the protocol has run; section 3:
    # shared biases and an absolute table in every arm, BEiT transfers the
    # biases, the others the absolute table
    assert (cfg.optim_wrapper.optimizer.lr,
            cfg.optim_wrapper.optimizer.weight_decay) == (1.6e-4, 0.1)
    backbone = cfg.model.backbone
    assert backbone.rel_pos_bias == 'shared'
    assert backbone.get('use_abs_pos_embed', True)
    assert backbone.transferred_pos == (('rel', ) if arm == 'beit-pre' else
                                        ('abs', ))
    if arm == 'random-init':
        assert cfg.pretrained is None
        assert cfg.train_cfg.max_epochs == 4 * base.train_cfg.max_epochs
        assert cfg.param_scheduler[1].T_max == cfg.train_cfg.max_epochs
    else:
        assert cfg.pretrained.startswith('checkpoints/')


# the ViTDet simple-pyramid Faster R-CNN recipe of the course report: the
# rows of its Table 1, stage 1 (15 epochs) and stage 2 (15 epochs)
SIMPLE = ('faster_rcnn/faster-rcnn_vit-{size}_simple-pyramid_{pre}_{stage}_'
          '{schedule}.py')
RECIPE = dict(size='base-p16', pre='mae-pre', schedule='1xb2-15e_coco-512px')
DEMO = dict(
    size='demo', pre='mae-demo-pre', schedule='1xb2-3e_demo-coco-128px')
# Table 1 row -> (backbone frozen, colour jitter, layer-wise lr decay,
# starts from: 'mae' checkpoint, None (random) or the stage-1 row's best)
TABLE1 = {
    'stage1-a-no-pre': (False, False, False, None),
    'stage1-b-freeze': (True, False, False, 'mae'),
    'stage1-c-freeze-jitter': (True, True, False, 'mae'),
    'stage1-d-unified-lr': (False, False, False, 'mae'),
    'stage1-e-decay-lr': (False, False, True, 'mae'),
    'stage1-f-decay-lr-jitter': (False, True, True, 'mae'),
    'stage2-b-to-e': (False, False, True, 'stage1-b-freeze'),
    'stage2-b-to-f': (False, True, True, 'stage1-b-freeze'),
    'stage2-c-to-f': (False, True, True, 'stage1-c-freeze-jitter'),
    'stage2-e-to-e': (False, False, True, 'stage1-e-decay-lr'),
    'stage2-e-to-f': (False, True, True, 'stage1-e-decay-lr'),
    'stage2-f-to-f': (False, True, True, 'stage1-f-decay-lr-jitter'),
}
# what a row may change relative to row (B), by the table's columns
ROW_KEYS = {
    'frozen': {'model.backbone.frozen'},
    'jitter': {
        'train_pipeline', 'train_dataloader.dataset.pipeline',
        'strong_color_jitter.type', 'strong_color_jitter.brightness',
        'strong_color_jitter.contrast', 'strong_color_jitter.saturation',
        'strong_color_jitter.hue'
    },
    'decay': {'optim_wrapper.constructor', 'optim_wrapper.paramwise_cfg'},
    'start':
    {'pretrained', 'load_from', 'default_hooks.checkpoint.filename_tmpl'},
}


def _simple(stage, **kind):
    kind = kind or RECIPE
    if stage == 'stage1-a-no-pre':
        kind = dict(kind, pre='random-init')
    return _config(SIMPLE.format(stage=stage, **kind))


def _changed(cfg, base):
    ours, theirs = _flat(cfg.to_dict()), _flat(base.to_dict())
    return {
        k
        for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)
    }


def test_simple_pyramid_faster_rcnn_recipe():
    cfg = _simple('stage1-b-freeze')
    model = cfg.model
    assert model.type == 'FasterRCNN'
    backbone = model.backbone
    # MAE ViT-B of 224 px, position table interpolated to the 512-px grid
    assert (backbone.type, backbone.arch, backbone.img_size) == \
        ('mmpretrain.WindowedViT', 'base', 224)
    assert cfg.pretrained.endswith('mae_pretrain_vit_base.pth')
    assert backbone.out_indices == (-1, ) and backbone.frozen
    pyramid, fpn = model.neck
    assert pyramid.type == 'mmpretrain.ViTSimplePyramid'
    # a 5th level pooled from the 4th for the RPN (no extra convs)
    assert fpn.num_outs == 5 and not fpn.get('add_extra_convs', False)
    anchors = model.rpn_head.anchor_generator
    assert [anchors.scales[0] * s for s in anchors.strides] == \
        [32, 64, 128, 256, 512]
    assert anchors.ratios == [0.5, 1.0, 2.0]
    # 512 x 512 inputs, horizontal flip, batch 2
    assert model.data_preprocessor.batch_augments[0].size == (512, 512)
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    test = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    assert train['Resize'].scale == test['Resize'].scale == (512, 512)
    assert test['Pad'].size == (512, 512)
    assert train['RandomFlip'].prob == 0.5
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 2
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.betas,
            optimizer.weight_decay) == ('AdamW', 1e-4, (0.9, 0.999), 0.01)
    warmup, step = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == \
        ('LinearLR', False, 8000)
    assert (step.type, step.by_epoch, step.step_size, step.gamma) == \
        ('StepLR', True, 10, 0.1)
    hook = cfg.default_hooks.checkpoint
    assert hook.type == 'mmpretrain.AtomicCheckpointHook'
    assert (hook.save_best, hook.rule) == ('coco/bbox_mAP', 'greater')


def test_simple_pyramid_ships_the_rows_of_table1():
    found = {
        osp.basename(p).split('_')[4]
        for p in DET_CONFIGS if 'simple-pyramid' in p and 'base-p16' in p
    }
    assert found == set(TABLE1)


@pytest.mark.parametrize('row', list(TABLE1))
def test_simple_pyramid_row_is_its_table1_row(row):
    """Each row is row (B) plus only the columns the table changes, and 15
    epochs per stage; a stage-2 row starts from the stage-1 row's best
    checkpoint."""
    frozen, jitter, decay, start = TABLE1[row]
    cfg, base = _simple(row), _simple('stage1-b-freeze')
    assert cfg.train_cfg.max_epochs == 15  # Table 1: "(15 epochs)"
    assert cfg.param_scheduler[1].end == 15
    assert cfg.model.backbone.frozen is frozen
    pipeline = cfg.train_dataloader.dataset.pipeline
    jitters = [t for t in pipeline if t.type == 'mmpretrain.UMColorJitter']
    assert bool(jitters) is jitter
    if jitter:  # before packing; brightness / contrast / saturation / hue
        assert pipeline[-2] == jitters[0]
        assert pipeline[:-2] + [pipeline[-1]] == \
            base.train_dataloader.dataset.pipeline
        assert (jitters[0].brightness, jitters[0].contrast,
                jitters[0].saturation, jitters[0].hue) == \
            ((0.1, 2.0), (0.1, 2.0), (0.1, 2.0), 0.1)
    layer_decay = cfg.optim_wrapper.get('constructor') == \
        'mmpretrain.UMLayerDecayOptimWrapperConstructor'
    assert layer_decay is decay
    if decay:
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.7
    if start is None:
        assert cfg.pretrained is None and cfg.get('load_from') is None
    elif start == 'mae':
        assert cfg.pretrained == base.pretrained
        assert cfg.get('load_from') is None
    else:  # the whole detector from the stage-1 row's best checkpoint
        assert cfg.pretrained is None
        src = _simple(start)
        name = osp.splitext(osp.basename(src.filename))[0]
        tmpl = src.default_hooks.checkpoint.filename_tmpl
        assert cfg.load_from == f'work_dirs/{name}/best_coco_bbox_mAP_{tmpl}'
        assert cfg.default_hooks.checkpoint.filename_tmpl != tmpl
    allowed = set(ROW_KEYS['start']) if start != 'mae' else set()
    if not frozen:
        allowed |= ROW_KEYS['frozen']
    if jitter:
        allowed |= ROW_KEYS['jitter']
    if decay:
        allowed |= ROW_KEYS['decay']
    changed = {
        'optim_wrapper.paramwise_cfg'
        if k.startswith('optim_wrapper.paramwise_cfg.') else k
        for k in _changed(cfg, base)
    }
    assert changed <= allowed


def test_simple_pyramid_demo_stage2_states_only_its_differences():
    stage1, stage2 = _simple('stage1-frozen',
                             **DEMO), _simple('stage2-jitter', **DEMO)
    assert _changed(stage2, stage1) == {
        'pretrained', 'load_from', 'model.backbone.frozen', 'train_pipeline',
        'train_dataloader.dataset.pipeline',
        'default_hooks.checkpoint.filename_tmpl', 'strong_color_jitter.type',
        'strong_color_jitter.brightness', 'strong_color_jitter.contrast',
        'strong_color_jitter.saturation', 'strong_color_jitter.hue'
    }
    assert stage2.model.backbone.frozen is False
    assert stage2.pretrained is None


@pytest.mark.parametrize('stage', ['stage1-b-freeze', 'stage1-e-decay-lr'])
def test_frozen_stage_really_freezes(stage):
    """Stage 1 trains the neck and heads only: the backbone gets no
    gradient, the optimizer does not hold its weights (they stay bit for
    bit, weight decay included), and it stays in eval mode. Stage 2 trains
    it."""
    from mmengine.optim import build_optim_wrapper
    cfg = _simple(stage)
    cfg.model.backbone.init_cfg = None
    frozen = cfg.model.backbone.frozen
    torch.manual_seed(0)
    model = _tiny_detector(cfg)
    model.init_weights()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.optimizer.lr = 1e-2  # large steps make any drift visible
    wrapper = build_optim_wrapper(model, optim_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert model.backbone.training is not frozen
    for _ in range(2):
        losses = model(**_batch(model), mode='loss')
        wrapper.update_params(model.parse_losses(losses)[0])
    changed = {
        k
        for k, v in model.state_dict().items()
        if not torch.equal(v, before[k])
    }
    assert any(k.startswith('neck.1.') for k in changed)
    assert any(k.startswith('roi_head.') for k in changed)
    backbone = {f'backbone.{k}' for k in model.backbone.state_dict()}
    if not frozen:
        assert 'backbone.layers.7.attn.qkv.weight' in changed
        return
    assert not changed & backbone
    assert all(p.grad is None for p in model.backbone.parameters())
    # the constructor leaves the frozen weights out of the optimizer, so no
    # step and no (decoupled) weight decay reaches them; trained weights of
    # the same kind get the decay
    decay = {
        id(p): g.get('weight_decay')
        for g in wrapper.optimizer.param_groups
        for p in g['params']
    }
    assert not any(id(p) in decay for p in model.backbone.parameters())
    assert decay[id(model.roi_head.bbox_head.shared_fcs[0].weight)] == 0.01
