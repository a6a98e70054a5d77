# Copyright (c) um-mae contributors. All rights reserved.
"""Convert an official UM-MAE checkpoint to um_mae's model keys.

Usage::

    python tools/model_converters/ummae_official_to_ours.py SRC DST

SRC is an official checkpoint (``{'model': state_dict}`` or a bare state
dict). The architecture is detected from the keys:

* a pre-training checkpoint (has ``decoder_embed``) becomes a ``UMMAE``
  state dict: ``backbone.*`` plus ``neck.*`` (``MAEPyramidDecoder``; the
  official final ``norm`` is the neck's ``in_norm``);
* a fine-tuned classifier (has ``head``) becomes an ``ImageClassifier``
  state dict: ``backbone.*`` (``fc_norm`` included) plus ``head.fc.*``.

DST is written as ``{'state_dict': ..., 'meta': ...}``. The report lists
every official key that was not mapped; nothing is dropped silently, and
``--strict`` turns unmapped keys into an error.

New architectures plug in through ``ARCH_RULES`` (how to recognise the
checkpoint) and ``BACKBONE_CONVERTERS`` (``'module:function'`` of a
``convert_official_<arch>(state_dict) -> dict`` that maps the backbone keys
and passes the tensors through unchanged).
"""
import argparse
import importlib
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple

import torch
from torch import Tensor

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


def _load_function(path: str) -> Callable:
    module, name = path.split(':')
    return getattr(importlib.import_module(module), name)


def unwrap(checkpoint: dict) -> Dict[str, Tensor]:
    """Return the state dict of an official checkpoint."""
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in checkpoint.items())


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
              _load_function(BACKBONE_CONVERTERS[arch])(state_dict))]
    if 'decoder_embed.weight' in state_dict:
        kind = 'pretrain'
        if arch not in NECK_CONVERTERS:
            raise ValueError(f'no decoder converter registered for {arch!r}'
                             '; add it to NECK_CONVERTERS')
        parts.append(
            ('neck.', _load_function(NECK_CONVERTERS[arch])(state_dict)))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='fail if any official key is not mapped')
    args = parser.parse_args()

    checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    state_dict, report = convert(checkpoint)
    print(f'arch: {report["arch"]}, checkpoint kind: {report["kind"]}')
    print(f'mapped {len(report["mapped"])} keys -> {len(state_dict)} keys')
    if report['unused']:
        print(f'{len(report["unused"])} official keys NOT mapped:')
        for key in report['unused']:
            print(f'  {key}')
        if args.strict:
            raise SystemExit('unmapped keys with --strict; nothing written')
    else:
        print('every official key was mapped')
    torch.save(
        dict(
            state_dict=state_dict,
            meta=dict(
                converted_from=args.src,
                arch=report['arch'],
                kind=report['kind'])), args.dst)
    print(f'saved to {args.dst}')


if __name__ == '__main__':
    main()
