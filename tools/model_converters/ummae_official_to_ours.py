# Copyright (c) um-mae contributors. All rights reserved.
"""Convert a released checkpoint to um_mae's model keys.

Usage::

    python tools/model_converters/ummae_official_to_ours.py SRC DST [--strict]

SRC is read safely (no code from the file runs; ``.pth``, ``.bin``,
``.pth.tar``, ``.safetensors``) and its release is told from the keys (see
``um_mae.models.converters``):

* an official UM-MAE (PVT, Swin, ViT) or MAE checkpoint becomes a whole
  model: a pre-training checkpoint (has ``decoder_embed``) a ``UMMAE`` state
  dict (``backbone.*`` plus the decoder as ``neck.*``), a fine-tuned
  classifier (has ``head``) an ``ImageClassifier`` one (``backbone.*`` plus
  ``head.fc.*``);
* timm / DeiT, MoCo v3 and BEiT checkpoints become ``backbone.*``.

A file in um_mae / mmpretrain layout already, or a detector / segmentor, is
refused (one line, exit code 1). DST is written as ``{'state_dict': ...,
'meta': ...}`` through a temporary file renamed at the end: a failed write
(a full disk) leaves an existing DST as it was. The report lists every
source key that was not mapped; ``--strict`` turns them into an error.
``CheckedPretrained`` converts the same files on the fly, so this tool is
only needed to resume pre-training from an official checkpoint or to
inspect a conversion.
"""
import argparse
import os.path as osp
from collections import Counter

from um_mae.engine.atomic_save import atomic_torch_save
from um_mae.models.converters import (convert_checkpoint, read_checkpoint,
                                      unwrap)
from um_mae.toolkit.cli import UsageError, user_errors


def check_destination(dst: str) -> None:
    """Refuse a destination that cannot be written, before converting.

    Its folder is created if missing.
    """
    import os
    import tempfile
    if osp.isdir(dst):
        raise UsageError(f'destination {dst!r} is a folder; give a file '
                         f'name, e.g. {osp.join(dst, "converted.pth")}')
    folder = osp.dirname(osp.abspath(dst))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f'cannot write {dst!r}: its folder {folder!r} '
                         f'cannot be created or written ({e.strerror}); '
                         'choose another destination') from e


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='fail if any source key is not mapped')
    args = parser.parse_args()

    with user_errors():
        check_destination(args.dst)
        state_dict = unwrap(read_checkpoint(args.src))
        try:
            state_dict, report = convert_checkpoint(state_dict)
        except ValueError as e:
            raise ValueError(f'{args.src}: {e}') from e
    print(f'release: {report["format"]}')
    print(f'arch: {report["arch"]}, checkpoint kind: {report["kind"]}')
    print(f'-> {len(state_dict)} keys')
    for why, n in Counter(report['dropped'].values()).items():
        print(f'left out: {why} ({n} keys)')
    if report['unused']:
        print(f'{len(report["unused"])} source keys NOT mapped:')
        for key in report['unused']:
            print(f'  {key}')
        if args.strict:
            raise SystemExit('unmapped keys with --strict; nothing written')
    else:
        print('every source key was mapped')
    meta = dict(
        converted_from=args.src,
        release=report['format'],
        arch=report['arch'],
        kind=report['kind'])
    with user_errors():  # a temporary file renamed: never a truncated dst
        atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'saved to {args.dst}')


if __name__ == '__main__':
    main()
