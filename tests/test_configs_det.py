# Copyright (c) um-mae contributors. All rights reserved.
"""Detection configs: recipe, wiring, and a loss step of every detector.

The full-size backbones are built on the ``meta`` device (no memory) to
check that the FPN ``in_channels`` of each config are the channels the
backbone returns; the loss step swaps in the backbone's tiny ``'demo'``
arch and small images, so the rest of the detector (neck, heads, losses,
batch augments) runs as configured.
"""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.registry import DefaultScope

import um_mae  # noqa: F401
from um_mae.models.backbones import UMPVT, UMSwinTransformer, ViTDetBackbone

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', 'det', '**', '*.py'), recursive=True)
    if '_base_' not in p)
IDS = [osp.relpath(p, osp.join(REPO, 'configs', 'det')) for p in DET_CONFIGS]
BACKBONES = {
    'mmpretrain.UMPVT': UMPVT,
    'mmpretrain.UMSwinTransformer': UMSwinTransformer,
    'mmpretrain.ViTDetBackbone': ViTDetBackbone,
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
    else:
        per_stage = [backbone.embed_dims] * 4
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
    assert list(_first_neck(cfg).in_channels) == _out_channels(backbone)
    if 'demo' not in path:
        # the checkpoint is one config field (`pretrained`, None for the
        # random arm), loaded with the checks
        init = cfg.model.backbone.init_cfg
        assert init.type == 'CheckedPretrained'
        assert 'pretrained' in cfg
        assert init.prefix == 'backbone.'


@pytest.mark.parametrize('path', DET_CONFIGS, ids=IDS)
def test_loss_step_with_tiny_backbone(path):
    cfg = Config.fromfile(path)
    cls, kwargs = _backbone_kwargs(cfg)
    kwargs.update(arch='demo', drop_path_rate=0.)
    kwargs.pop('with_cp', None)
    if cls is UMPVT:
        kwargs['img_size'] = 64
    backbone_cfg = dict(type=cfg.model.backbone.type, **kwargs)
    cfg.model.backbone = backbone_cfg
    with torch.device('meta'):
        tiny = cls(**kwargs)
    _first_neck(cfg).in_channels = _out_channels(tiny)
    preprocessor = cfg.model.data_preprocessor
    for aug in preprocessor.get('batch_augments') or []:
        aug.size = (96, 96)  # instead of 1024

    MODELS = _mmdet_models()
    _few_rois(cfg.model.get('train_cfg'))
    # torch's SyncBN runs as BN in one process without a process group
    model = MODELS.build(cfg.model)
    model.train()
    with_semantic = 'semantic_head' in cfg.model.get('roi_head', {})
    torch.manual_seed(0)
    data = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 96, 64), (3, 64, 96)],
        num_items=[2, 1],
        num_classes=3,
        with_mask=True,
        with_semantic=with_semantic)
    data = model.data_preprocessor(data, training=True)
    assert data['inputs'].shape[-2:] == (96, 96)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize('type_,kwargs,channels', [
    ('mmpretrain.UMPVT', dict(arch='demo',
                              out_indices=(0, 1, 2, 3)), [16, 32, 64, 128]),
    ('mmpretrain.UMSwinTransformer', dict(
        arch='demo', out_indices=(0, 1, 2, 3)), [16, 32, 64, 128]),
    ('mmpretrain.ViTDetBackbone', dict(arch='demo',
                                       img_size=64), [32, 32, 32, 32]),
])
def test_backbone_builds_from_mmdet_registry(type_, kwargs, channels):
    MODELS = _mmdet_models()
    backbone = MODELS.build(dict(type=type_, **kwargs))
    outs = backbone(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == channels
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]


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


def _config(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'det', name))


def test_gfl_recipe():
    for arch in ('pvt-small', 'swin-tiny', 'vit-base-p16'):
        cfg = _config(f'gfl/gfl_{arch}_fpn-syncbn_8xb2-amp-lsj-1024-25e_'
                      'coco.py')
        assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
        assert cfg.auto_scale_lr.base_batch_size == 16
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
        assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 0
        assert cfg.optim_wrapper.paramwise_cfg.bias_decay_mult == 0
        neck = cfg.model.neck
        if arch == 'vit-base-p16':  # the adaptor's maps go to the FPN
            assert neck.type == 'FPN' and neck.in_channels == [768] * 3
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
        assert resize.scale == (1024, 1024)
        assert cfg.model.data_preprocessor.batch_augments[0].size == \
            (1024, 1024)


def test_mask_rcnn_recipe():
    for arch, drop_path in (('vit-base-p16', 0.1), ('vit-large-p16', 0.3),
                            ('pvt-small', 0.1), ('swin-tiny', 0.1)):
        cfg = _config(f'mask_rcnn/mask-rcnn_{arch}_fpn-syncbn_32xb2-amp-'
                      'lsj-1024-100e_coco.py')
        assert cfg.model.backbone.drop_path_rate == drop_path
        assert cfg.train_dataloader.batch_size * 32 == \
            cfg.auto_scale_lr.base_batch_size == 64
        assert cfg.model.neck.norm_cfg.type == 'SyncBN'
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
    from um_mae.utils.cli import UsageError, check_model_channels
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
        'model.backbone.use_abs_pos_embed',
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
    if arm == 'random-init':
        assert cfg.pretrained is None
        assert cfg.train_cfg.max_epochs == 4 * base.train_cfg.max_epochs
        assert cfg.param_scheduler[1].T_max == cfg.train_cfg.max_epochs
    else:
        assert cfg.pretrained.startswith('checkpoints/')
