# Copyright (c) um-mae contributors. All rights reserved.
"""Official UM-MAE checkpoints (github implus/UM-MAE) -> um_mae keys.

The official code numbers blocks globally (``blocks.<i>.``) and keeps
encoder, decoder and head in one flat dict. The architecture is detected
from the keys (:data:`ARCH_RULES`):

* a pre-training checkpoint (has ``decoder_embed``) becomes a ``UMMAE``
  state dict: ``backbone.*`` plus ``neck.*`` (``MAEPyramidDecoder``; the
  official final ``norm`` is the neck's ``in_norm``; for ViT mmpretrain's
  ``MAEPretrainDecoder``);
* a fine-tuned classifier (has ``head``) becomes an ``ImageClassifier``
  state dict: ``backbone.*`` (``fc_norm`` included) plus ``head.fc.*``.

Every mapper passes the tensors through unchanged (the same objects), so
:func:`convert` can tell by identity which official key ended up where.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from .keys import Rule, rename_keys, unwrap
from .vit import TIMM_BLOCK_RULES, convert_official_vit

__all__ = [
    'ARCH_RULES', 'BACKBONE_CONVERTERS', 'NECK_CONVERTERS', 'convert',
    'convert_official_mae_decoder', 'convert_official_pvt',
    'convert_official_swin', 'convert_official_vit_decoder', 'detect_arch'
]


def _block_ids(state_dict: Dict[str, Tensor],
               pattern: str = r'blocks\.(\d+)\.') -> List[int]:
    return sorted({
        int(m.group(1))
        for k in state_dict
        for m in [re.match(pattern, k)] if m
    })


def convert_official_pvt(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map the encoder keys of an official UM-MAE PVT checkpoint to ours.

    Handles the pre-training (``MaskedAutoencoderPVT``, ``SimMIMPVT``) and
    fine-tuning (``PVT``) layouts: ``patch_embed``, ``pos_embed``,
    ``vis_mask_token``, ``blocks.*``, ``fc_norm`` and, for SimMIM (no
    ``decoder_embed``), the encoder's ``mask_token``. Other keys (decoder,
    the UM-MAE decoder ``mask_token``, final ``norm``, ``head``) are left out
    for the caller. Tensors are passed through unchanged.

    Args:
        state_dict (dict): Official state dict (the ``'model'`` entry of an
            official checkpoint); ``module.`` prefixes are allowed.

    Returns:
        OrderedDict: Our backbone keys (without a ``backbone.`` prefix).
    """
    state_dict = unwrap(state_dict, containers=())
    # official blocks are numbered globally; a block with `downsample`
    # starts a new stage
    block_ids = _block_ids(state_dict)
    starts = set(_block_ids(state_dict, r'blocks\.(\d+)\.downsample\.'))
    place, stage, idx = {}, 0, 0
    for b in block_ids:
        if b in starts and b != block_ids[0]:
            stage, idx = stage + 1, 0
        place[b] = (stage, idx)
        idx += 1

    rules: List[Rule] = [
        (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
        (r'^(pos_embed|vis_mask_token)$', r'\1'),
        (r'^fc_norm\.', 'fc_norm.'),
    ]
    if 'decoder_embed.weight' not in state_dict:
        # SimMIM: the mask token is the encoder's
        rules.append((r'^mask_token$', 'mask_token'))
    for b, (stage, idx) in place.items():
        block = f'stages.{stage}.blocks.{idx}.'
        rules += [
            (rf'^blocks\.{b}\.downsample\.proj\.',
             f'stages.{stage}.downsample.projection.'),
            (rf'^blocks\.{b}\.mlp\.fc1\.', block + 'ffn.layers.0.0.'),
            (rf'^blocks\.{b}\.mlp\.fc2\.', block + 'ffn.layers.1.'),
            (rf'^blocks\.{b}\.(norm1|norm2|attn\.(q|kv|sr|norm|proj))\.',
             block + r'\1.'),
        ]
    return rename_keys(state_dict, rules)


def convert_official_swin(
        state_dict: Dict[str, Tensor],
        depths: Optional[Sequence[int]] = None) -> Dict[str, Tensor]:
    """Map official UM-MAE Swin keys to :class:`UMSwinTransformer` keys.

    Only the backbone part is returned (keys relative to the backbone):
    pre-training-only keys (``norm.*``, ``decoder_*``, and the decoder
    ``mask_token`` of UM-MAE) and the classifier ``head.*`` are left out;
    ``fc_norm.*`` is kept. The ``mask_token`` of an official SimMIM-Swin
    checkpoint (no ``decoder_embed``) is the encoder's and is kept.

    Args:
        state_dict (dict[str, Tensor]): Official ``models_mae_swin`` or
            ``models_swin`` state dict (``module.`` prefixes allowed).
        depths (Sequence[int], optional): Blocks per stage. ``None`` infers
            them from the ``blocks.<i>.downsample`` keys. Defaults to None.

    Returns:
        dict[str, Tensor]: Converted backbone state dict.
    """
    state_dict = unwrap(state_dict, containers=())
    block_ids = _block_ids(state_dict)
    if depths is None:
        starts = [0] + _block_ids(state_dict, r'blocks\.(\d+)\.downsample\.')
        ends = starts[1:] + [len(block_ids)]
        depths = [e - s for s, e in zip(starts, ends)]
    if sum(depths) != len(block_ids):
        raise ValueError(f'depths {list(depths)} do not add up to the '
                         f'{len(block_ids)} blocks of the state dict')

    rules: List[Rule] = [
        (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
        (r'^(patch_embed\.norm\.|fc_norm\.)', r'\1'),
        (r'^vis_mask_token$', 'vis_mask_token'),
    ]
    if 'decoder_embed.weight' not in state_dict:  # SimMIM's encoder token
        rules.append((r'^mask_token$', 'mask_token'))
    b = 0
    for stage, depth in enumerate(depths):
        for j in range(depth):
            block = f'stages.{stage}.blocks.{j}.'
            rules += [
                (rf'^blocks\.{b}\.downsample\.',
                 f'stages.{stage}.downsample.'),
                (rf'^blocks\.{b}\.attn\.posmlp\.',
                 block + 'attn.rel_pos_mlp.'),
                (rf'^blocks\.{b}\.mlp\.fc1\.', block + 'ffn.layers.0.0.'),
                (rf'^blocks\.{b}\.mlp\.fc2\.', block + 'ffn.layers.1.'),
                (rf'^blocks\.{b}\.', block),
            ]
            b += 1
    return rename_keys(state_dict, rules)


# the official decoders' timm blocks -> mmpretrain TransformerEncoderLayer
_DECODER_BLOCK_RULES: List[Rule] = [(r'^decoder_blocks\.(\d+)\.' + p,
                                     r'decoder_blocks.\1.' + r)
                                    for p, r in TIMM_BLOCK_RULES]


def convert_official_mae_decoder(
        state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map the decoder keys of an official UM-MAE PVT/Swin checkpoint.

    Covers the final encoder ``norm`` (our ``in_norm``), ``decoder_embed``,
    ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks`` (timm blocks
    -> mmpretrain ``TransformerEncoderLayer``), ``decoder_norm`` and
    ``decoder_pred``. Tensors are passed through unchanged; other keys are
    left out.

    Args:
        state_dict (dict): Official state dict.

    Returns:
        OrderedDict: Our neck keys (without a ``neck.`` prefix).
    """
    return rename_keys(
        unwrap(state_dict, containers=()), [
            (r'^norm\.', 'in_norm.'),
            (r'^(decoder_embed|decoder_norm|decoder_pred)\.', r'\1.'),
            (r'^(mask_token|decoder_pos_embed)$', r'\1'),
        ] + _DECODER_BLOCK_RULES)


def convert_official_vit_decoder(
        state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map the decoder keys of an official MAE / UM-MAE ViT checkpoint.

    Target: mmpretrain's ``MAEPretrainDecoder`` (``decoder_embed``,
    ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks``, ``ln1`` for
    the official ``decoder_norm``, ``decoder_pred``). Tensors are passed
    through unchanged; other keys are left out.

    Args:
        state_dict (dict): Official state dict.

    Returns:
        OrderedDict: Our neck keys (without a ``neck.`` prefix).
    """
    return rename_keys(
        unwrap(state_dict, containers=()), [
            (r'^(mask_token|decoder_pos_embed)$', r'\1'),
            (r'^(decoder_embed|decoder_pred)\.', r'\1.'),
            (r'^decoder_norm\.', 'ln1.'),
        ] + _DECODER_BLOCK_RULES)


# (arch, predicate on the key set), checked in order
ARCH_RULES: List[Tuple[str, Callable[[set], bool]]] = [
    ('swin', lambda keys: any('attn.posmlp' in k for k in keys)),
    ('pvt', lambda keys: any('attn.sr.' in k for k in keys)),
    ('vit',
     lambda keys: 'cls_token' in keys and 'blocks.0.attn.qkv.weight' in keys),
]

BACKBONE_CONVERTERS: Dict[str, Callable] = {
    'pvt': convert_official_pvt,
    'swin': convert_official_swin,
    'vit': convert_official_vit,
}

# decoders of the pre-training checkpoints, per arch
NECK_CONVERTERS: Dict[str, Callable] = {
    'pvt': convert_official_mae_decoder,
    'swin': convert_official_mae_decoder,
    'vit': convert_official_vit_decoder,
}


def detect_arch(state_dict: Dict[str, Tensor]) -> str:
    """Name of the official architecture the keys belong to."""
    keys = set(state_dict)
    for arch, rule in ARCH_RULES:
        if rule(keys):
            return arch
    raise ValueError(
        'cannot tell the architecture of this checkpoint (known: '
        f'{[a for a, _ in ARCH_RULES]}); add a rule to ARCH_RULES and a '
        'converter to BACKBONE_CONVERTERS')


def convert(state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], dict]:
    """Convert an official state dict to our full-model keys.

    Args:
        state_dict (dict): Official state dict (a checkpoint is unwrapped).

    Returns:
        tuple: The converted ``OrderedDict`` and a report dict with
        ``arch``, ``kind`` (``'pretrain'``/``'classifier'``/``'backbone'``),
        ``mapped`` (official -> our key) and ``unused`` (official keys).
    """
    state_dict = unwrap(state_dict)
    arch = detect_arch(state_dict)
    if arch not in BACKBONE_CONVERTERS:
        raise ValueError(f'no backbone converter registered for {arch!r}; '
                         'add it to BACKBONE_CONVERTERS')
    parts = [('backbone.', BACKBONE_CONVERTERS[arch](state_dict))]
    if 'decoder_embed.weight' in state_dict:
        kind = 'pretrain'
        if arch not in NECK_CONVERTERS:
            raise ValueError(f'no decoder converter registered for {arch!r}'
                             '; add it to NECK_CONVERTERS')
        parts.append(('neck.', NECK_CONVERTERS[arch](state_dict)))
    elif 'head.weight' in state_dict:
        kind = 'classifier'
        parts.append(('head.', rename_keys(state_dict, [(r'^head\.', 'fc.')])))
    else:
        kind = 'backbone'

    # converters pass tensors through, so identity tells which official
    # key ended up where
    source = {id(v): k for k, v in state_dict.items()}
    out, mapped = OrderedDict(), OrderedDict()
    for prefix, converted in parts:
        for key, value in converted.items():
            out[prefix + key] = value
            if id(value) in source:
                mapped[source[id(value)]] = prefix + key
    unused = [k for k in state_dict if k not in mapped]
    return out, dict(arch=arch, kind=kind, mapped=mapped, unused=unused)
