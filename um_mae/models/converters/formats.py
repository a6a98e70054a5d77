# Copyright (c) um-mae contributors. All rights reserved.
"""Tell a checkpoint's origin from its keys, and map it to backbone keys.

:func:`detect_format` checks :data:`FORMATS` in order; the first whose
``matches`` holds names the release. A state dict that matches none is in
um_mae's own layout, which is mmpretrain's (``backbone.*``, ``neck.*``, ...
as our runners and mmpretrain / mmdet / mmseg save them).
"""
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

from torch import Tensor

from .official import convert, convert_official_pvt, convert_official_swin
from .vit import Conversion, map_vit_keys

__all__ = [
    'FORMATS', 'CheckpointFormat', 'convert_checkpoint', 'describe_own_layout',
    'detect_format'
]


@dataclass(frozen=True)
class CheckpointFormat:
    """A published checkpoint layout.

    Attributes:
        name (str): What the log calls it, e.g. ``'BEiT (unilm)'``.
        matches (Callable[[set], bool]): Predicate on the key set (after
            ``module.`` prefixes are stripped).
        convert (Callable[[dict], Conversion]): Maps the state dict to
            backbone keys.
        needs (str): What a backbone needs to hold this checkpoint exactly,
            for error messages. Defaults to ``''``.
        official_arch (str): For the official UM-MAE / MAE layouts, the
            arch of :func:`~um_mae.models.converters.convert`, which maps the
            whole model (decoder / head too). Defaults to ``''``.
    """
    name: str
    matches: Callable[[Set[str]], bool]
    convert: Callable[[Dict[str, Tensor]], Conversion]
    needs: str = ''
    official_arch: str = ''


def _any(keys: Set[str], pattern: str) -> bool:
    regex = re.compile(pattern)
    return any(regex.match(k) for k in keys)


def _timm_vit(keys: Set[str]) -> bool:
    return 'blocks.0.attn.qkv.weight' in keys and \
        'patch_embed.proj.weight' in keys


def _by_identity(mapper: Callable) -> Callable[[dict], Conversion]:
    """A Conversion from an official mapper that passes tensors through:
    the source keys it did not use are the decoder / head / final norm."""

    def convert(state_dict: Dict[str, Tensor]) -> Conversion:
        out = mapper(state_dict)
        used = {id(v) for v in out.values()}
        return Conversion(
            out, {
                k: 'not part of the backbone (decoder, head or final norm)'
                for k, v in state_dict.items() if id(v) not in used
            })

    return convert


_BEIT_NEEDS = (
    'BEiT needs a backbone with relative position biases and layer scale, '
    'and no absolute position embedding unless the file has one: '
    'ViTDetBackbone(layer_scale_init_value=0.1, use_abs_pos_embed=False)')

FORMATS: List[CheckpointFormat] = [
    CheckpointFormat('MoCo v3 (official, base encoder)',
                     lambda k: 'base_encoder.blocks.0.attn.qkv.weight' in k,
                     lambda sd: map_vit_keys(sd, prefix='base_encoder.')),
    CheckpointFormat(
        'BEiT (unilm)',
        lambda k: 'rel_pos_bias.relative_position_bias_table' in k or _any(
            k, r'blocks\.\d+\.(attn\.q_bias|gamma_1|attn\.relative_position_'
            r'bias_table)$'),
        map_vit_keys,
        needs=_BEIT_NEEDS),
    CheckpointFormat(
        'UM-MAE PVT (official)',
        lambda k: _any(k, r'blocks\.\d+\.attn\.sr\.'),
        _by_identity(convert_official_pvt),
        official_arch='pvt'),
    CheckpointFormat(
        'UM-MAE Swin (official)',
        lambda k: _any(k, r'blocks\.\d+\.attn\.posmlp\.'),
        _by_identity(convert_official_swin),
        official_arch='swin'),
    CheckpointFormat('DeiT distilled',
                     lambda k: _timm_vit(k) and 'dist_token' in k,
                     map_vit_keys),
    CheckpointFormat(
        'UM-MAE ViT (official)',
        lambda k: _timm_vit(k) and 'vis_mask_token' in k,
        map_vit_keys,
        official_arch='vit'),
    CheckpointFormat(
        'MAE (official, pre-train)',
        lambda k: _timm_vit(k) and 'decoder_embed.weight' in k,
        map_vit_keys,
        official_arch='vit'),
    CheckpointFormat(
        'MAE (official, fine-tuned)',
        lambda k: _timm_vit(k) and 'fc_norm.weight' in k and 'norm.weight'
        not in k,
        map_vit_keys,
        official_arch='vit'),
    CheckpointFormat('timm ViT', lambda k: _timm_vit(k) and 'head.weight' in k,
                     map_vit_keys),
    CheckpointFormat('MAE encoder (official) or headless timm ViT', _timm_vit,
                     map_vit_keys),
]

# key signs of our own backbones, for messages about our layout
_OWN_ARCHS = [
    ('a UMSwinTransformer (Swin) backbone', r'(.*\.)?stages\.\d+\.blocks\.'
     r'\d+\.attn\.rel_pos_mlp\.'),
    ('a UMPVT (PVT) backbone', r'(.*\.)?stages\.\d+\.blocks\.\d+\.attn\.'
     r'(sr|kv)\.'),
    ('a ViT backbone (mmpretrain VisionTransformer keys)',
     r'(.*\.)?layers\.\d+\.attn\.qkv\.'),
]


def detect_format(state_dict: Dict[str, Tensor]) -> Optional[CheckpointFormat]:
    """The published layout of a state dict, None for our own layout.

    Args:
        state_dict (dict): An unwrapped state dict (see
            :func:`~um_mae.models.converters.unwrap`).

    Returns:
        CheckpointFormat | None: The first entry of :data:`FORMATS` whose
        predicate holds.
    """
    keys = set(state_dict)
    return next((f for f in FORMATS if f.matches(keys)), None)


def describe_own_layout(state_dict: Dict[str, Tensor]) -> str:
    """Which of our backbones a state dict in our layout holds, if any.

    Args:
        state_dict (dict): Key -> tensor.

    Returns:
        str: E.g. ``'a UMPVT (PVT) backbone'``, or ``''`` when unknown.
    """
    for what, pattern in _OWN_ARCHS:
        if _any(set(state_dict), pattern):
            return what
    return ''


# whole-model keys of um_mae / mmpretrain and of mmdet / mmseg models
_OWN_PARTS = r'(backbone|neck|head|data_preprocessor|target_generator|' \
    r'momentum_encoder)\.'
_DENSE_PARTS = r'(rpn_head|roi_head|bbox_head|mask_head|decode_head|' \
    r'auxiliary_head|semantic_head)\.'


def convert_checkpoint(
        state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], dict]:
    """Convert a released checkpoint to our model keys (the converter CLI).

    Official UM-MAE and MAE layouts become whole models (``backbone.*`` plus
    the decoder as ``neck.*`` or the classifier as ``head.fc.*``, see
    :func:`~um_mae.models.converters.convert`); other releases become
    ``backbone.*``.

    Args:
        state_dict (dict): An unwrapped state dict.

    Returns:
        tuple: The converted ``OrderedDict`` and a report: ``format`` (the
        release), ``arch``, ``kind`` (``'pretrain'`` / ``'classifier'`` /
        ``'backbone'``), ``unused`` (source keys not converted, other than)
        ``dropped`` (source key -> why it is not part of a backbone, for the
        releases other than the official ones).

    Raises:
        ValueError: The keys are ours / mmpretrain's or a detector's or
            segmentor's already, or of no known release.
    """
    fmt = detect_format(state_dict)
    keys = set(state_dict)
    if fmt is None:
        found = sorted({k.split('.')[0] + '.' for k in keys})[:6]
        if _any(keys, _DENSE_PARTS):
            raise ValueError(
                f'this is a detector / segmentor checkpoint in the mmdet / '
                f'mmseg layout (keys {found}); nothing to convert: evaluate '
                "it with tools/test.py or take its backbone with "
                "CheckedPretrained(prefix='backbone.')")
        if _any(keys, _OWN_PARTS) or describe_own_layout(state_dict):
            raise ValueError(
                f'this checkpoint is in um_mae / mmpretrain layout already '
                f'(keys {found}); nothing to convert: load it with '
                "CheckedPretrained(prefix='backbone.') or load_from")
        raise ValueError(
            f'cannot tell which release this checkpoint is (keys {found}); '
            f'known: {[f.name for f in FORMATS]}')
    if fmt.official_arch:
        out, report = convert(state_dict)
        report.update(format=fmt.name, dropped={})
        return out, report
    conv = fmt.convert(state_dict)
    out = OrderedDict(('backbone.' + k, v) for k, v in conv.state_dict.items())
    return out, dict(
        format=fmt.name,
        arch='vit',
        kind='backbone',
        unused=conv.unknown,
        dropped=conv.dropped)
