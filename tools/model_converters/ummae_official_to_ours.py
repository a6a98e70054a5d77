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

import torch

from um_mae.models.utils.official_convert import (ARCH_RULES,  # noqa: F401
                                                  BACKBONE_CONVERTERS,
                                                  NECK_CONVERTERS, convert,
                                                  detect_arch, unwrap)


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
