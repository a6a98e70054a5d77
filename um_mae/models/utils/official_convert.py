# Copyright (c) um-mae contributors. All rights reserved.
"""Official UM-MAE checkpoints -> um_mae model keys.

The official code (github implus/UM-MAE) numbers blocks globally
(``blocks.<i>.``) and keeps encoder, decoder and head in one flat dict. The
architecture is detected from the keys:

* a pre-training checkpoint (has ``decoder_embed``) becomes a ``UMMAE``
  state dict: ``backbone.*`` plus ``neck.*`` (``MAEPyramidDecoder``; the
  official final ``norm`` is the neck's ``in_norm``);
* a fine-tuned classifier (has ``head``) becomes an ``ImageClassifier``
  state dict: ``backbone.*`` (``fc_norm`` included) plus ``head.fc.*``.

New architectures plug in through ``ARCH_RULES`` (how to recognise the
checkpoint) and ``BACKBONE_CONVERTERS`` (``'module:function'`` of a
``convert_official_<arch>(state_dict) -> dict`` that maps the backbone keys
and passes the tensors through unchanged). Used by
``tools/model_converters/ummae_official_to_ours.py`` and
:func:`um_mae.models.utils.load_pretrained`.
"""
import importlib
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple

from torch import Tensor

__all__ = [
    'ARCH_RULES', 'BACKBONE_CONVERTERS', 'NECK_CONVERTERS', 'load_function',
    'unwrap', 'detect_arch', 'convert'
]

# (arch, predicate on the key set), checked in order
ARCH_RULES: List[Tuple[str, Callable[[set], bool]]] = [
    ('swin', lambda keys: any('attn.posmlp' in k for k in keys)),
    ('pvt', lambda keys: any('attn.sr.' in k for k in keys)),
    ('vit',
     lambda keys: 'cls_token' in keys and 'blocks.0.attn.qkv.weight' in keys),
]

BACKBONE_CONVERTERS: Dict[str, str] = {
    'pvt': 'um_mae.models.backbones.pvt:convert_official_pvt',
    'swin': 'um_mae.models.backbones.swin:convert_official_swin',
    'vit': 'um_mae.models.backbones.vit:convert_official_vit',
}

# decoders of the pre-training checkpoints, per arch
NECK_CONVERTERS: Dict[str, str] = {
    'pvt':
    'um_mae.models.necks.mae_pyramid_decoder:convert_official_mae_decoder',
    'swin':
    'um_mae.models.necks.mae_pyramid_decoder:convert_official_mae_decoder',
    'vit': 'um_mae.models.backbones.vit:convert_official_vit_decoder',
}


def load_function(path: str) -> Callable:
    """Import ``'module:function'``."""
    module, name = path.split(':')
    return getattr(importlib.import_module(module), name)


def unwrap(checkpoint: dict) -> 'OrderedDict[str, Tensor]':
    """The state dict of a checkpoint, without ``module.`` prefixes.

    Args:
        checkpoint (dict): A runner checkpoint (``'state_dict'``), an
            official one (``'model'``) or a bare state dict.

    Returns:
        OrderedDict: Key -> tensor.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must hold a dict, got '
                        f'{type(checkpoint).__name__}; save the model with '
                        'torch.save(model.state_dict(), path)')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return OrderedDict((re.sub(r'^module\.', '', k), v)
                       for k, v in checkpoint.items() if isinstance(v, Tensor))


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
        state_dict (dict): Official state dict (unwrapped).

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
    parts = [('backbone.',
              load_function(BACKBONE_CONVERTERS[arch])(state_dict))]
    if 'decoder_embed.weight' in state_dict:
        kind = 'pretrain'
        if arch not in NECK_CONVERTERS:
            raise ValueError(f'no decoder converter registered for {arch!r}'
                             '; add it to NECK_CONVERTERS')
        parts.append(
            ('neck.', load_function(NECK_CONVERTERS[arch])(state_dict)))
    elif 'head.weight' in state_dict:
        kind = 'classifier'
        parts.append(('head.', {
            'fc.' + k[len('head.'):]: v
            for k, v in state_dict.items() if k.startswith('head.')
        }))
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
