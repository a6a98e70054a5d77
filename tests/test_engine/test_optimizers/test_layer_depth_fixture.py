# Copyright (c) um-mae contributors. All rights reserved.
"""Every parameter of every backbone keeps its layer-wise lr decay depth.

``tests/data/layer_depths/depths_6382045.json`` holds the depth that
``layer_depths`` gave every parameter at commit 6382045, before the
backbones shared one ``get_layer_depth`` (then PVT's depths came from a name
rule in the optimizer constructor, Swin's / ViTs' from their own methods).
It was written by the old code with::

    git worktree add /tmp/base 6382045
    PYTHONPATH=/tmp/base python \
        tests/test_engine/test_optimizers/test_layer_depth_fixture.py \
        > tests/data/layer_depths/depths_6382045.json

The only deliberate correction (:data:`CORRECTIONS`): ``UMViT`` used
mmpretrain's ``VisionTransformer.get_layer_depth``, which puts any name it
does not know on the top depth, so its pre-training token
``vis_mask_token`` had the depth of the head; every other backbone puts its
tokens with the embeddings at depth 0, and so does the shared rule now.

The fixture was written by our own code; :data:`RULES` derives every depth
independently from UM-MAE's rule written out in this file, and the
constructor must give both.
"""
import json
import os.path as osp
import re
import sys

import pytest
from mmpretrain.registry import MODELS
from torch import nn

import um_mae  # noqa: F401
from um_mae.engine.optimizers import layer_depths

FIXTURE = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'data',
    'layer_depths', 'depths_6382045.json')

#: backbones (every registered class, its archs and optional parameters)
CASES = {
    'pvt-demo-tokens':
    dict(
        type='UMPVT',
        arch='demo',
        img_size=64,
        learnable_pos_embed=True,
        with_vis_mask_token=True,
        mask_mode='mask_token'),
    'pvt-small-avg':
    dict(type='UMPVT', arch='small', out_type='avg_featmap'),
    'swin-demo-tokens':
    dict(
        type='UMSwinTransformer',
        arch='demo',
        with_vis_mask_token=True,
        mask_mode='mask_token'),
    'swin-tiny-avg':
    dict(type='UMSwinTransformer', arch='tiny', out_type='avg_featmap'),
    'vit-tiny-vis-token':
    dict(
        type='UMViT',
        arch='deit-tiny',
        img_size=32,
        with_vis_mask_token=True,
        learnable_pos_embed=True),
    'windowed-vit-demo':
    dict(type='WindowedViT', arch='demo', img_size=64),
    'windowed-vit-demo-layer-scale':
    dict(
        type='WindowedViT',
        arch='demo',
        img_size=64,
        layer_scale_init_value=0.1,
        use_abs_pos_embed=False),
}

#: (case, parameter) -> depth now, where it deliberately differs
CORRECTIONS = {
    # was the top depth (mmpretrain's rule for unknown names); now with the
    # embeddings, like the tokens of every other backbone
    ('vit-tiny-vis-token', 'backbone.vis_mask_token'):
    0,
}


def _model(case: str) -> nn.Module:
    """The backbone of ``case`` under ``backbone.``, with a head on top."""
    model = nn.Module()
    model.backbone = MODELS.build(CASES[case])
    model.head = nn.Linear(2, 2)
    return model


def _depths(case: str) -> dict:
    return {n: list(d) for n, d in layer_depths(_model(case)).items()}


@pytest.mark.parametrize('case', sorted(CASES))
def test_every_parameter_keeps_its_depth(case):
    with open(FIXTURE) as f:
        expected = json.load(f)[case]
    for (fixed_case, name), depth in CORRECTIONS.items():
        if fixed_case == case:
            expected[name][0] = depth
    assert _depths(case) == expected


#: the layer-depth rule of UM-MAE's layer-wise lr decay, written out per
#: backbone family: (names of the input embedding, depth 0; block pattern
#: with its stage and block index groups)
RULES = {
    'pyramid': (('patch_embed', 'pos_embed', 'mask_token', 'vis_mask_token'),
                r'^backbone\.stages\.(\d+)\.(?:blocks\.(\d+)|downsample)\.'),
    'plain': (('patch_embed', 'pos_embed', 'cls_token', 'mask_token',
               'vis_mask_token'), r'^backbone\.layers\.(\d+)()\.'),
}


def _derived_depths(model: nn.Module, family: str) -> dict:
    """Depth of every parameter by the rule: the input embedding 0; block
    i of the flattened stages (a stage-start merging with the stage's
    first block) i + 1; everything else (final norms, the head) on top,
    of sum(blocks) + 2 depths. Blocks per stage are counted from the
    parameter names."""
    stem, block = RULES[family]
    names = [n for n, _ in model.named_parameters()]
    blocks = {}
    for name in names:
        match = re.match(block, name)
        if match:
            stage, index = int(match.group(1)), match.group(2)
            count = int(index) + 1 if index else 1
            blocks[stage] = max(blocks.get(stage, 0), count)
    if family == 'plain':  # one stage of layers
        blocks = {0: len(blocks)}
    total = sum(blocks.values()) + 2
    depths = {}
    for name in names:
        match = re.match(block, name)
        if name.split('.')[1] in stem:
            depth = 0
        elif match and family == 'plain':
            depth = int(match.group(1)) + 1
        elif match:
            stage, index = int(match.group(1)), match.group(2)
            before = sum(blocks[s] for s in range(stage))
            depth = before + (int(index) if index else 0) + 1
        else:
            depth = total - 1
        depths[name] = [depth, total]
    return depths


@pytest.mark.parametrize('case', sorted(CASES))
def test_every_parameter_has_the_depth_of_the_written_rule(case):
    """An independent derivation of the fixture: the constructor's depths
    equal the rule above for every parameter. Planted bugs caught: a
    stage-start merging given the previous block's depth (``or -1`` in
    ``layer_depth``); ``mask_token`` dropped from ``STEM_NAMES`` (on top,
    as the old UMViT's ``vis_mask_token``)."""
    family = 'plain' if 'vit' in case else 'pyramid'
    model = _model(case)
    assert _depths(case) == _derived_depths(model, family)


if __name__ == '__main__':
    json.dump({case: _depths(case)
               for case in sorted(CASES)},
              sys.stdout,
              indent=0,
              sort_keys=True)
    sys.stdout.write('\n')
