# Copyright (c) um-mae contributors. All rights reserved.
"""UMLayerDecayOptimWrapperConstructor: depths, lr scales, plain AdamW."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import PolyLR, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import nn

import um_mae  # noqa: F401
from um_mae.engine.optimizers import (UMLayerDecayOptimWrapperConstructor,
                                      layer_depths)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONSTRUCTOR = 'mmpretrain.UMLayerDecayOptimWrapperConstructor'


def _classifier(backbone: dict) -> nn.Module:
    """A mmpretrain ImageClassifier (GAP + norm + linear) on ``backbone``."""
    backbone = dict(backbone)
    channels = backbone.pop('_channels')
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(out_type='avg_featmap', **backbone),
            head=dict(
                type='LinearClsHead', num_classes=5, in_channels=channels)))


def _build(model, rate, lr=1e-3, wd=0.05, **paramwise):
    return build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type='AdamW', lr=lr, weight_decay=wd),
            constructor=CONSTRUCTOR,
            paramwise_cfg=dict(layer_decay_rate=rate, **paramwise)))


# the UM-MAE rule: patch embedding 0, block i (over all stages; the merge
# at a stage start belongs to its first block) i + 1, the rest on top
PVT_DEMO = dict(
    backbone=dict(
        type='UMPVT',
        arch='demo',
        img_size=64,
        learnable_pos_embed=True,
        _channels=128),  # depths 1, 1, 2, 1
    expected={
        'backbone.pos_embed': 0,
        'backbone.patch_embed.projection.weight': 0,
        'backbone.stages.0.blocks.0.attn.q.weight': 1,
        'backbone.stages.1.downsample.projection.weight': 2,
        'backbone.stages.1.blocks.0.norm1.bias': 2,
        'backbone.stages.2.downsample.projection.bias': 3,
        'backbone.stages.2.blocks.1.ffn.layers.1.weight': 4,
        'backbone.stages.3.downsample.projection.weight': 5,
        'backbone.stages.3.blocks.0.attn.sr.weight': 5,
        'backbone.fc_norm.weight': 6,
        'head.fc.weight': 6,
    },
    num_depths=7)
SWIN_DEMO = dict(
    backbone=dict(
        type='UMSwinTransformer', arch='demo', window_size=4,
        _channels=128),  # depths 2, 2, 2, 2
    expected={
        'backbone.patch_embed.projection.weight': 0,
        'backbone.patch_embed.norm.weight': 0,
        'backbone.stages.0.blocks.1.attn.qkv.weight': 2,
        'backbone.stages.1.downsample.proj.weight': 3,
        'backbone.stages.1.downsample.norm.bias': 3,
        'backbone.stages.1.blocks.1.attn.rel_pos_mlp.0.weight': 4,
        'backbone.stages.3.downsample.proj.weight': 7,
        'backbone.stages.3.blocks.1.norm2.weight': 8,
        'backbone.fc_norm.weight': 9,
        'head.fc.bias': 9,
    },
    num_depths=10)
VIT_TINY = dict(
    backbone=dict(
        type='UMViT',
        arch='deit-tiny',
        img_size=32,
        patch_size=16,
        _channels=192),  # 12 layers
    expected={
        'backbone.cls_token': 0,
        'backbone.pos_embed': 0,
        'backbone.patch_embed.projection.weight': 0,
        'backbone.layers.0.attn.qkv.weight': 1,
        'backbone.layers.11.ffn.layers.1.weight': 12,
        'head.fc.weight': 13,
    },
    num_depths=14)
CASES = dict(pvt=PVT_DEMO, swin=SWIN_DEMO, vit=VIT_TINY)


@pytest.mark.parametrize('case', list(CASES))
def test_classifier_depths_and_lr_scales(case):
    case = CASES[case]
    model = _classifier(dict(case['backbone']))
    depths = layer_depths(model)
    for name, depth in case['expected'].items():
        assert depths[name] == (depth, case['num_depths']), name
    # every parameter of the classifier is placed, the head on top
    assert set(depths) == {n for n, _ in model.named_parameters()}

    rate = 0.8
    wrapper = _build(model, rate, lr=2e-3)
    top = case['num_depths'] - 1
    seen = set()
    for group in wrapper.optimizer.param_groups:
        scale = rate**(top - group['layer_id'])
        assert group['lr_scale'] == pytest.approx(scale)
        assert group['lr'] == pytest.approx(2e-3 * scale)
        seen.update(id(p) for p in group['params'])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert seen == {id(p) for p in trainable}
    assert sum(len(g['params'])
               for g in wrapper.optimizer.param_groups) == len(trainable)


def _group_of(wrapper, param):
    return next(
        g for g in wrapper.optimizer.param_groups
        if any(p is param for p in g['params']))


def test_no_weight_decay_for_norms_biases_embeddings_tokens():
    # mmpretrain's ViT as fine-tuned (learnable position embedding)
    model = _classifier(
        dict(VIT_TINY['backbone'], type='VisionTransformer', final_norm=False))
    wrapper = _build(model, 0.75, wd=0.05)
    params = dict(model.named_parameters())
    assert params['backbone.pos_embed'].requires_grad
    for name in ('backbone.cls_token', 'backbone.pos_embed',
                 'backbone.layers.3.ln1.weight', 'backbone.ln2.bias',
                 'backbone.layers.3.attn.qkv.bias', 'head.fc.bias'):
        assert _group_of(wrapper, params[name])['weight_decay'] == 0, name
    for name in ('backbone.patch_embed.projection.weight',
                 'backbone.layers.3.attn.qkv.weight', 'head.fc.weight'):
        assert _group_of(wrapper, params[name])['weight_decay'] == 0.05, name

    pvt = MODELS.build(
        dict(
            type='UMPVT',
            arch='demo',
            with_vis_mask_token=True,
            learnable_pos_embed=True))
    wrapper = _build(pvt, 0.75)
    assert _group_of(wrapper, pvt.vis_mask_token)['weight_decay'] == 0
    assert _group_of(wrapper, pvt.pos_embed)['layer_id'] == 0
    # a fixed sin-cos table is not optimized at all
    fixed = MODELS.build(dict(type='UMPVT', arch='demo'))
    groups = _build(fixed, 0.75).optimizer.param_groups
    assert all(p is not fixed.pos_embed for g in groups for p in g['params'])


@pytest.mark.parametrize('no_decay_names', [(), ('pos_embed', ), ('q', )])
def test_no_decay_names_do_not_move_depths(no_decay_names):
    """Which parameters decay is independent of their depth (lr group)."""
    model = MODELS.build(
        dict(
            type='UMPVT',
            arch='demo',
            with_vis_mask_token=True,
            learnable_pos_embed=True))
    ids = {id(p): n for n, p in model.named_parameters()}

    def layer_ids(wrapper):
        return {
            ids[id(p)]: g['layer_id']
            for g in wrapper.optimizer.param_groups
            for p in g['params']
        }

    default = layer_ids(_build(model, 0.75))
    edited = layer_ids(_build(model, 0.75, no_decay_names=no_decay_names))
    assert edited == default
    assert default == {n: d for n, (d, _) in layer_depths(model).items()}


@pytest.mark.dense  # the neck is mmseg's Feature2Pyramid
def test_vit_pyramid_neck_is_on_top():
    model = nn.Module()
    model.backbone = MODELS.build(
        dict(type='WindowedViT', arch='demo', img_size=64))  # 8 layers
    model.neck = MODELS.build(dict(type='ViTMultiScaleAdaptor', embed_dim=32))
    depths = layer_depths(model)
    assert depths['backbone.pos_embed'] == (0, 10)
    assert depths['backbone.layers.7.attn.qkv.weight'] == (8, 10)
    assert depths['neck.upsample_4x.0.weight'] == (9, 10)
    assert all(d == (9, 10) for n, d in depths.items()
               if n.startswith('neck.'))


def test_decay_one_is_plain_adamw():
    torch.manual_seed(0)
    model = _classifier(dict(PVT_DEMO['backbone']))
    reference = _classifier(dict(PVT_DEMO['backbone']))
    reference.load_state_dict(model.state_dict())
    wrapper = _build(model, 1.0, lr=1e-2, wd=0.05)
    assert {g['lr_scale'] for g in wrapper.optimizer.param_groups} == {1.0}

    # torch's AdamW with the official no-decay split (0/1-D + pos_embed)
    decay, no_decay = [], []
    for name, p in reference.named_parameters():
        (no_decay
         if p.ndim <= 1 or name.endswith('pos_embed') else decay).append(p)
    adamw = torch.optim.AdamW(
        [dict(params=decay),
         dict(params=no_decay, weight_decay=0.)],
        lr=1e-2,
        weight_decay=0.05)

    x = torch.randn(2, 3, 64, 64)
    for _ in range(2):
        for net, opt in ((model, wrapper.optimizer), (reference, adamw)):
            opt.zero_grad()
            net.head.loss_module(net(x), torch.tensor([1, 3])).backward()
            opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    # the step moved the weights
    assert not torch.equal(
        model.head.fc.weight,
        _classifier(dict(PVT_DEMO['backbone'])).head.fc.weight)


def test_scheduler_keeps_layer_ratios():
    model = MODELS.build(dict(type='UMPVT', arch='demo'))
    wrapper = _build(model, 0.5, lr=1.0)
    scheduler = PolyLR(wrapper.optimizer, eta_min=0, power=1.0, end=10)
    for _ in range(3):
        wrapper.optimizer.step()
        scheduler.step()
    groups = wrapper.optimizer.param_groups
    factor = groups[0]['lr'] / groups[0]['lr_scale']
    assert 0 < factor < 1  # the schedule has decayed the lr
    for group in groups:
        assert group['lr'] == pytest.approx(factor * group['lr_scale'])
        assert group['initial_lr'] == pytest.approx(group['lr_scale'])


@pytest.mark.dense
@pytest.mark.parametrize('path', [
    'tests/data/configs/upernet_pvt-demo_demo-seg.py',
    'tests/data/configs/gfl_pvt-demo_demo-coco.py',
])
def test_dense_models_cross_scope(path):
    """From mmseg / mmdet: scoped constructor name, backbone below heads."""
    cfg = Config.fromfile(osp.join(REPO, path))
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS as HOST
    else:
        from mmdet.registry import MODELS as HOST
    model = HOST.build(cfg.model)
    wrapper = _build(model, 0.65)
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    depths = layer_depths(model)
    for name, (depth, num) in depths.items():
        assert num == 7
        if name.startswith('backbone.stages.3.blocks.0'):
            assert depth == 5
        elif not name.startswith('backbone.'):
            assert depth == 6, name
    scales = {
        g['layer_id']: g['lr_scale']
        for g in wrapper.optimizer.param_groups
    }
    assert scales[6] == 1 and scales[0] == pytest.approx(0.65**6)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match='layer_decay_rate 1.5'):
        UMLayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(layer_decay_rate=1.5))
    with pytest.raises(ValueError, match=r"\['norm_decay_mult'\].*_delete_"):
        UMLayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(norm_decay_mult=0.))
    with pytest.raises(TypeError, match='get_layer_depth'):
        _build(nn.Sequential(nn.Linear(2, 2)), 0.5)
