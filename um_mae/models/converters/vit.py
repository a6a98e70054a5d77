# Copyright (c) um-mae contributors. All rights reserved.
"""Published ViT checkpoints -> mmpretrain ``VisionTransformer`` keys.

``UMViT`` and ``WindowedViT`` use the key names of mmpretrain's
``VisionTransformer`` (``patch_embed.projection``, ``layers.<i>.ln1``,
``layers.<i>.attn.qkv``, ``layers.<i>.ffn.layers.0.0``, final ``ln1``,
pooled-feature ``ln2``; layer scale ``layers.<i>.attn.gamma1.weight`` /
``layers.<i>.ffn.gamma2.weight``). Every other ViT release stores a timm
``VisionTransformer``, possibly with extras:

=====================================  =====================================
release                                handled by
=====================================  =====================================
timm ``vit_*`` (``.bin``,              :func:`convert_timm_vit`
``.safetensors``), DeiT
DeiT distilled (``dist_token``,        :func:`convert_timm_vit`: the token,
``head_dist``, 2 extra tokens)         its ``pos_embed`` slot and head go
MAE / UM-MAE pre-train, MAE encoder,   :func:`convert_timm_vit` (decoder and
MAE fine-tuned (``fc_norm``)           head are left out)
MoCo v3 ``.pth.tar``                   :func:`convert_mocov3_vit` (base
(``module.base_encoder.*``)            encoder; momentum encoder, projector
                                       and predictor are left out)
BEiT / BEiT v2 (unilm), pre-train and  :func:`convert_beit`: ``q_bias`` /
fine-tuned                             ``v_bias`` -> ``qkv.bias`` with a zero
                                       k bias, ``gamma_1/2`` -> layer scale,
                                       shared or per-block relative position
                                       tables -> every block's table
=====================================  =====================================

A zero k bias is exact, in the forward and in training: it adds the same
``q . b_k`` to every logit of a query row, which the softmax removes, so
its gradient is zero too. BEiT's bias tables end with three entries for the
class token (class->patch, patch->class, class->class); dense backbones run
without a class token, so the tables keep only the ``(2h-1) * (2w-1)``
patch-pair entries. Mappers pass tensors through unchanged where they only
rename.
"""
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .keys import Rule, rename_keys, unwrap

__all__ = [
    'Conversion', 'TIMM_BLOCK_RULES', 'convert_beit', 'convert_mocov3_vit',
    'convert_official_vit', 'convert_timm_vit', 'map_vit_keys',
    'share_block_tables', 'split_fused_vit_adaptor'
]

# a timm ``Block`` -> an mmpretrain ``TransformerEncoderLayer``; used after a
# prefix with the block index as group 1, so own groups start at \2
TIMM_BLOCK_RULES: List[Rule] = [
    (r'norm1\.', 'ln1.'),
    (r'norm2\.', 'ln2.'),
    (r'attn\.(qkv|proj)\.', r'attn.\2.'),
    (r'mlp\.fc1\.', 'ffn.layers.0.0.'),
    (r'mlp\.fc2\.', 'ffn.layers.1.'),
]
# layer scale (timm ``ls1/ls2``, BEiT ``gamma_1/2``), BEiT's q / v biases
# (merged below) and per-block relative position bias tables
_EXTRA_BLOCK_RULES: List[Rule] = [
    (r'(ls1\.gamma|gamma_1)$', 'attn.gamma1.weight'),
    (r'(ls2\.gamma|gamma_2)$', 'ffn.gamma2.weight'),
    (r'attn\.(q_bias|v_bias|relative_position_bias_table)$', r'attn.\2'),
]
_SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
_VIT_RULES: List[Rule] = [
    (r'^(cls_token|pos_embed|vis_mask_token)$', r'\1'),
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^norm\.', 'ln1.'),
    (r'^fc_norm\.', 'ln2.'),
    (r'^norm_pre\.', 'pre_norm.'),
    (r'^' + re.escape(_SHARED_TABLE) + '$', _SHARED_TABLE),
] + [(r'^blocks\.(\d+)\.' + p, r'layers.\1.' + r)
     for p, r in TIMM_BLOCK_RULES + _EXTRA_BLOCK_RULES]

# parts of the released models that are not part of a ViT backbone
_NOT_BACKBONE: List[Tuple[str, str]] = [
    (r'^(head|pre_logits)\.', 'classifier head'),
    (r'^head_dist\.', 'DeiT distillation head'),
    (r'^dist_token$', 'DeiT distillation token (its pos_embed slot goes '
     'too)'),
    (r'^decoder_', 'MAE decoder'),
    (r'^mask_token$', 'pre-training mask token'),
    (r'^lm_head\.', 'BEiT pre-training head'),
    (r'(^|\.)relative_position_index$',
     'relative position index buffer (the backbone builds its own)'),
    (r'^momentum_encoder\.', 'MoCo v3 momentum encoder'),
    (r'^predictor\.', 'MoCo v3 predictor'),
    (r'^base_encoder\.head\.', 'MoCo v3 projection head'),
]


@dataclass
class Conversion:
    """What a mapper made of a checkpoint.

    Attributes:
        state_dict (OrderedDict): Backbone keys -> tensors.
        dropped (dict): Source keys left out on purpose -> why (heads,
            decoders, momentum encoders, index buffers, ...).
        unknown (list): Source keys the mapper does not know; a loader
            reports them, as they may change what the network computes.
    """
    state_dict: 'OrderedDict[str, Tensor]'
    dropped: Dict[str, str] = field(default_factory=dict)
    unknown: List[str] = field(default_factory=list)


def _patch_pair_entries(table: Tensor) -> Tensor:
    """BEiT's ``((2h-1)(2w-1) + 3, heads)`` table without the class-token
    entries; other tables are returned unchanged."""
    side = math.isqrt(table.shape[0] - 3)
    if side * side == table.shape[0] - 3 and side % 2 == 1:
        return table[:-3]
    return table


def map_vit_keys(state_dict: Dict[str, Tensor],
                 prefix: str = '') -> Conversion:
    """Map any timm-style ViT state dict; the engine of this module.

    Args:
        state_dict (dict): The released state dict (``module.`` prefixes
            allowed).
        prefix (str): Where the ViT sits, e.g. ``'base_encoder.'`` in MoCo
            v3. Defaults to ``''``.

    Returns:
        Conversion: mmpretrain ``VisionTransformer`` keys and a record of
        the source keys left out.
    """
    conv = Conversion(OrderedDict())
    kept = OrderedDict()
    for key, value in unwrap(state_dict, containers=()).items():
        reason = next(
            (why for pattern, why in _NOT_BACKBONE if re.search(pattern, key)),
            None)
        if reason is not None:
            conv.dropped[key] = reason
        elif key.startswith(prefix):
            kept[key[len(prefix):]] = value
        else:
            conv.unknown.append(key)
    unknown: List[str] = []
    out = rename_keys(kept, _VIT_RULES, unmatched=unknown)
    conv.unknown += [prefix + k for k in unknown]

    if 'dist_token' in conv.dropped and 'pos_embed' in out:
        pos = out['pos_embed']  # (1, 2 + L, C): class, distillation, patches
        out['pos_embed'] = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)
    layers = sorted({
        int(m.group(1))
        for k in out
        for m in [re.match(r'layers\.(\d+)\.', k)] if m
    })
    shared = out.pop(_SHARED_TABLE, None)
    for i in layers:
        table = f'layers.{i}.attn.relative_position_bias_table'
        if shared is not None and table not in out:
            out[table] = shared
        if table in out:
            out[table] = _patch_pair_entries(out[table])
        q = out.pop(f'layers.{i}.attn.q_bias', None)
        v = out.pop(f'layers.{i}.attn.v_bias', None)
        if q is not None and v is not None:
            out[f'layers.{i}.attn.qkv.bias'] = torch.cat(
                [q, torch.zeros_like(q), v])
        elif q is not None or v is not None:  # one of them alone: report
            conv.unknown.append(f'blocks.{i}.attn.{"q" if v is None else "v"}'
                                '_bias')
    conv.state_dict = out
    return conv


def convert_timm_vit(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """timm / DeiT / DeiT-distilled / MAE / UM-MAE ViT -> our keys.

    Args:
        state_dict (dict): The released state dict (the ``'model'`` entry
            of MAE / DeiT / UM-MAE checkpoints); ``module.`` prefixes are
            allowed.

    Returns:
        OrderedDict: Backbone keys; heads, decoders, the distillation token
        and keys the mapper does not know are left out.
    """
    return map_vit_keys(state_dict).state_dict


# the official UM-MAE ViT is the MAE model (plus ``vis_mask_token``)
convert_official_vit = convert_timm_vit


def convert_mocov3_vit(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """MoCo v3 (facebookresearch/moco-v3) ViT checkpoint -> our keys.

    Takes the base encoder (``module.base_encoder.*`` without its
    projection ``head``), as MoCo v3's own ``convert_to_deit.py`` does.

    Args:
        state_dict (dict): The ``'state_dict'`` entry of the ``.pth.tar``.

    Returns:
        OrderedDict: Backbone keys.
    """
    return map_vit_keys(state_dict, prefix='base_encoder.').state_dict


def convert_beit(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """BEiT (microsoft/unilm) pre-trained or fine-tuned ViT -> our keys.

    See the module docstring for the q / v bias, layer scale and relative
    position bias mapping.

    Args:
        state_dict (dict): The ``'model'`` entry of a BEiT checkpoint.

    Returns:
        OrderedDict: Backbone keys, including
        ``layers.<i>.attn.relative_position_bias_table`` (patch pairs
        only, for the pre-training grid).
    """
    return map_vit_keys(state_dict).state_dict


def share_block_tables(state_dict: Dict[str, Tensor],
                       blocks: Sequence[int],
                       shared_key: str,
                       prefix: str = '') -> None:
    """Per-block relative position bias tables -> one shared table.

    The rule for loading ``layers.<i>.attn.relative_position_bias_table``
    (BEiT's tables, which :func:`map_vit_keys` gives every block) into a
    table that the ``blocks`` share (Li et al.'s ViT): exact or refused.
    When every block of the group holds the same table (BEiT's shared
    table, or a checkpoint of shared tables expanded per block), it becomes
    ``shared_key``; tables that differ (a fine-tuned BEiT with per-block
    tables) have no exact shared equivalent, and averaging them would
    change what every block computes. Works in place; a state dict without
    per-block tables for these blocks is left unchanged.

    Args:
        state_dict (dict): Key -> tensor; changed in place.
        blocks (Sequence[int]): The blocks that share the table.
        shared_key (str): Key of the shared table, prefix included.
        prefix (str): Prefix of the block keys, e.g. ``'backbone.'``.
            Defaults to ``''``.

    Raises:
        ValueError: Only some blocks of the group have a table, or the
            tables differ.
    """
    keys = [
        f'{prefix}layers.{i}.attn.relative_position_bias_table' for i in blocks
    ]
    present = [k for k in keys if k in state_dict]
    if not present:
        return
    if len(present) != len(keys):
        missing = [k for k in keys if k not in state_dict]
        raise ValueError(
            f'the checkpoint has relative position bias tables for some of '
            f'the blocks sharing {shared_key} but not for {missing}; a '
            'shared table needs all of them (or none)')
    first = state_dict[present[0]]
    for key in present[1:]:
        table = state_dict[key]
        if table.shape != first.shape or not torch.equal(table, first):
            diff = (table.float() - first.float()).abs().max().item() \
                if table.shape == first.shape else 'shapes differ'
            raise ValueError(
                f'cannot load per-block relative position bias tables into '
                f'the shared {shared_key} exactly: {key} differs from '
                f'{present[0]} (max |difference| {diff}); they are not '
                'averaged. Build WindowedViT with '
                "rel_pos_bias='per_block' for this checkpoint (e.g. a "
                'fine-tuned BEiT)')
    for key in present:
        del state_dict[key]
    state_dict[shared_key] = first


def split_fused_vit_adaptor(
    state_dict: Dict[str, Tensor],
    neck: str = 'neck.0.',
    fpn: Optional[str] = 'neck.1.',
    rescales: Sequence[float] = (4, 2, 1, 0.5)
) -> 'OrderedDict[str, Tensor]':
    """Keys of a model saved with the fused ``ViTDetBackbone`` -> today's.

    Before the split into ``WindowedViT`` and ``ViTMultiScaleAdaptor`` the
    resolution modules were part of the backbone. For a whole detector /
    segmentor state dict (``backbone.*``, ``neck.*``, heads):

    * ``backbone.scale_modules.0.*`` (the x4 module) ->
      ``{neck}upsample_4x.*``, dropped when 4 is not in ``rescales`` (the
      old GFL configs built it but used strides 8 - 32 only);
    * ``backbone.scale_modules.1.*`` (the x2 transposed conv) ->
      ``{neck}upsample_2x.0.*`` (modules 2 and 3 have no weights);
    * ``neck.*`` (the FPN) -> ``{fpn}*``: mmdet configs list
      ``[adaptor, FPN]`` as the neck, built as ``nn.Sequential``;
      ``fpn=None`` keeps the keys (mmseg configs, where the adaptor is the
      whole neck: ``neck='neck.'``);
    * everything else (the ViT trunk, heads) unchanged.

    Args:
        state_dict (dict): The model's state dict (a runner checkpoint's
            ``'state_dict'``).
        neck (str): Prefix of the adaptor in the new model. Defaults to
            ``'neck.0.'``.
        fpn (str, optional): New prefix of the old ``neck.*``. Defaults to
            ``'neck.1.'``.
        rescales (Sequence[float]): The adaptor's ``rescales``. Defaults to
            ``(4, 2, 1, 0.5)``.

    Returns:
        OrderedDict: The renamed state dict (the same tensors).
    """
    up4 = None if 4 not in rescales else f'{neck}upsample_4x.'
    rules: List[Rule] = [
        (r'^backbone\.scale_modules\.0\.', up4),
        (r'^backbone\.scale_modules\.1\.', f'{neck}upsample_2x.0.'),
    ]
    if fpn is not None:
        rules.append((r'^neck\.', fpn))
    return rename_keys(state_dict, rules + [(r'', '')])
