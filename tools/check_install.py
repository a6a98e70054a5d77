# Copyright (c) um-mae contributors. All rights reserved.
"""Check an installation: do mmcv's compiled ops run on CPU and on CUDA?

    python tools/check_install.py                 # after installing
    python tools/check_install.py --before-build  # can mmcv's ops be built?

After installing, ``nms`` and ``roi_align`` of ``mmcv.ops`` run on CPU and,
when a CUDA device is visible, on CUDA, and are compared with torchvision's
(a detector on a GPU with CPU-only ops otherwise fails late, inside its
first RoI head). With ``FORCE_CUDA=1`` the ops must also be compiled with
CUDA when no device is visible (building for another machine's GPUs).

``--before-build`` checks what mmcv's build (``tools/install.sh``) will
compile: the CUDA ops when a GPU is visible or ``FORCE_CUDA=1``, which needs
a CUDA build of torch and an nvcc of the same CUDA major version.

Exit status 0 when all is well, 1 otherwise; each line names the fix.
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

REBUILD = ('rebuild mmcv with `FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=<your GPU, '
           'e.g. 8.0> bash tools/install.sh` (see docs/install.md, GPU users)')


def _force_cuda() -> bool:
    return os.environ.get('FORCE_CUDA', '0') == '1'


def nvcc_release(nvcc: str) -> Optional[str]:
    """The CUDA release ``nvcc --version`` reports (e.g. ``'12.6'``)."""
    try:
        out = subprocess.run([nvcc, '--version'],
                             capture_output=True,
                             text=True,
                             timeout=60).stdout
    except OSError:
        return None
    found = re.search(r'release (\d+\.\d+)', out)
    return found.group(1) if found else None


def before_build() -> List[str]:
    """What mmcv's build will compile; problems raise ``SystemExit``."""
    import torch
    if not (_force_cuda() or torch.cuda.is_available()):
        return [
            f'mmcv build: CPU ops only for torch {torch.__version__} '
            '(no CUDA device visible; FORCE_CUDA=1 adds the CUDA ops)'
        ]
    if torch.version.cuda is None:
        raise SystemExit(
            f'mmcv build: the CUDA ops need a CUDA build of torch, but torch '
            f'{torch.__version__} is CPU-only; install torch 2.12.1 of your '
            'CUDA variant (TORCH_INDEX_URL, see docs/install.md) or build the '
            'CPU ops only (FORCE_CUDA=0)')
    from torch.utils.cpp_extension import CUDA_HOME
    nvcc = osp.join(CUDA_HOME, 'bin', 'nvcc') if CUDA_HOME else 'nvcc'
    release = nvcc_release(nvcc)
    if release is None:
        raise SystemExit(
            f'mmcv build: the CUDA ops need nvcc of CUDA {torch.version.cuda} '
            f'(torch {torch.__version__}), but {nvcc} does not run; install '
            'that CUDA toolkit and set CUDA_HOME to it, or build the CPU '
            'ops only (FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)')
    if release.split('.')[0] != torch.version.cuda.split('.')[0]:
        raise SystemExit(
            f'mmcv build: {nvcc} is CUDA {release} but torch '
            f'{torch.__version__} was built with CUDA {torch.version.cuda}; '
            'set CUDA_HOME to a CUDA toolkit of the same major version, or '
            'install the torch 2.12.1 of your toolkit (TORCH_INDEX_URL)')
    arch = os.environ.get('TORCH_CUDA_ARCH_LIST') or 'the visible GPUs'
    return [
        f'mmcv build: CPU and CUDA ops with {nvcc} (CUDA {release}) for '
        f'torch {torch.__version__} (CUDA {torch.version.cuda}), '
        f'architectures: {arch}'
    ]


def run_ops(device: str) -> None:
    """Run ``nms`` and ``roi_align`` on ``device``; compare with torchvision.

    Raises:
        AssertionError: the results differ from torchvision's.
        RuntimeError: an op has no kernel for ``device``.
    """
    import torch
    import torchvision
    from mmcv.ops import nms, roi_align
    gen = torch.Generator().manual_seed(0)
    corner = torch.rand(64, 2, generator=gen) * 48
    boxes = torch.cat(
        [corner, corner + 4 + 12 * torch.rand(64, 2, generator=gen)], dim=1)
    scores = torch.rand(64, generator=gen)
    _, keep = nms(boxes.to(device), scores.to(device), iou_threshold=0.5)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    assert keep.cpu().tolist() == expected.tolist(), 'nms differs'
    feats = torch.rand(2, 3, 16, 16, generator=gen)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0], [1, 2.5, 3.0, 14.0, 12.5]])
    out = roi_align(
        feats.to(device), rois.to(device), (4, 4), 1.0, 2, 'avg', True)
    expected = torchvision.ops.roi_align(feats, rois, (4, 4), 1.0, 2, True)
    torch.testing.assert_close(out.cpu(), expected, msg='roi_align differs')


def _run(device: str) -> Optional[str]:
    try:
        run_ops(device)
    except (AssertionError, RuntimeError) as e:
        return f'{type(e).__name__}: {str(e).splitlines()[0]}'
    return None


def after_install() -> List[str]:
    """Report versions and where the ops run; failures raise SystemExit."""
    import torch

    from um_mae.toolkit.cli import mmcv_ops_error
    lines = [
        f'torch {torch.__version__} (CUDA build: '
        f'{torch.version.cuda or "none"})'
    ]
    for name in ('mmengine', 'mmcv', 'mmpretrain', 'mmdet', 'mmseg'):
        try:
            module = __import__(name)
        except ImportError:
            continue
        lines.append(f'{name} {module.__version__}')
    missing = mmcv_ops_error()
    if missing:
        raise SystemExit('\n'.join(lines + [f'mmcv ops: {missing}']))
    from mmcv.ops import get_compiling_cuda_version
    compiled = get_compiling_cuda_version()
    compiled = 'none' if compiled == 'not available' else compiled
    lines.append(f'mmcv ops compiled with CUDA: {compiled}')
    failed = False
    error = _run('cpu')
    lines.append(f'mmcv ops on CPU: {error or "ok (nms, roi_align)"}')
    failed |= error is not None
    if torch.cuda.is_available():
        error = _run('cuda')
        if error:
            error += f'; {REBUILD}'
        name = torch.cuda.get_device_name()
        lines.append(f'mmcv ops on CUDA ({name}): '
                     f'{error or "ok (nms, roi_align)"}')
        failed |= error is not None
    else:
        lines.append('mmcv ops on CUDA: no CUDA device')
        if _force_cuda() and compiled == 'none':
            lines.append(f'FORCE_CUDA=1 but mmcv has no CUDA ops; {REBUILD}')
            failed = True
    if failed:
        raise SystemExit('\n'.join(lines))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--before-build',
        action='store_true',
        help='check what mmcv\'s build from source will compile')
    args = parser.parse_args(argv)
    lines = before_build() if args.before_build else after_install()
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
