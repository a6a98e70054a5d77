# Copyright (c) um-mae contributors. All rights reserved.
"""One line for every bad input, whichever library noticed it.

The tools run the user's work inside :func:`user_errors`. Errors that are
about the input (our ``ValueError`` / ``TypeError`` naming the value and the
fix, unknown registry types, file-system problems, and the upstream errors
listed in :data:`UPSTREAM_ERRORS`) end the tool with ``error: <one line>``
and exit code 1; anything else is a bug and keeps its traceback.
``UM_MAE_DEBUG=1`` shows the traceback in every case.
"""
import contextlib
import errno
import json
import os
import re
import sys
from typing import Optional

__all__ = [
    'UsageError', 'UPSTREAM_ERRORS', 'describe_error', 'user_errors',
    'fail'
]


class UsageError(Exception):
    """Bad input to a tool; the message says what is wrong and the fix."""


#: upstream messages (torch, mmengine, mmdet, mmseg, mmpretrain) that name
#: neither the cause in the user's terms nor the fix: (pattern of the
#: message, what we print instead; ``{0}`` .. are the pattern's groups[,
#: a function that must be in the traceback])
UPSTREAM_ERRORS = [
    (r'need at least one array to concatenate',
     'the dataset is empty: no image was found, or (detection) no image '
     'has a usable annotation ("annotations": [] or every box dropped); '
     'check the data with `python tools/check_dataset.py CONFIG`',
     '_serialize_data'),
    (r'Expected more than 1 value per channel when training',
     'a BatchNorm layer got one value per channel: one image per process '
     'reached a 1 x 1 map (e.g. the pooling module of UperNet at batch 1); '
     'use train_dataloader.batch_size >= 2 per process, or SyncBN over '
     'several GPU processes (bash tools/dist_train.sh CONFIG N)'),
    (r'Weights only load failed',
     'mmengine read a checkpoint with torch.load defaults, which refuse '
     "runner checkpoints: add 'um_mae.engine.checkpoint_loading' to the "
     "config's custom_imports (configs/_base_/um_mae_runtime.py does) so "
     'checkpoints are read safely'),
    (r'persistent_workers option needs num_workers > 0',
     'num_workers=0 with persistent_workers=True; set '
     '<loader>.persistent_workers=False too'),
    (r"Found 0 files in subfolders of: \{'img_path': '([^']*)'\}",
     'no image found in {0}: put the images there (.jpg, .jpeg, .png, '
     '.bmp, .ppm, .pgm, .tif) or point the data_root at them '
     '(--data-root DIR)'),
    (r'Cannot find valid image after (\d+)',
     'no readable image among {0} tries: every sample failed to load (with '
     "on_error='skip' all of them were skipped); check the data with "
     '`python tools/check_dataset.py` or point the data_root at the images'),
    (r'num_samples should be a positive integer value, but got '
     r'num_samples=0',
     'the dataset is empty: no image (or, for detection, no image with a '
     'usable annotation) was found; check the data with '
     '`python tools/check_dataset.py`'),
    (r'only batches of spatial targets supported \(3D tensors\) but got '
     r'targets of dimension: 4',
     'segmentation label maps have colour channels: labels must be '
     'single-channel PNGs of class ids (convert colour-coded maps to class '
     'indices); `python tools/check_dataset.py CONFIG` lists them'),
    (r'The shape of the mask \[(\d+), (\d+)\] at index 0 does not match '
     r'the shape of the indexed tensor \[(\d+), (\d+)\]',
     'a segmentation label map is {0} x {1} but its image {2} x {3}: '
     'label maps must have the size of their image; `python '
     'tools/check_dataset.py CONFIG` lists them', 'intersect_and_union'),
    (r'Target (-?\d+) is out of bounds',
     'a segmentation label holds the value {0}, which is no class index: '
     'labels must be single-channel PNGs of class ids 0 .. num_classes - 1 '
     '(255 = ignore); check them with `python tools/check_dataset.py`'),
]

_OS_HINTS = {
    errno.ENOSPC: 'the disk is full: free space or write to another disk '
    '(--work-dir)',
    errno.EROFS: 'the file system is read-only: choose a writable folder '
    '(--work-dir)',
    errno.EACCES: 'permission denied: choose a folder you can write to '
    '(--work-dir) or fix the permissions',
    errno.ELOOP: 'a symbolic link loop: remove or fix the link',
    errno.ENOTDIR: 'a path component is a file, not a folder',
    errno.EISDIR: 'a folder where a file is expected',
    errno.EEXIST: 'a file is in the way of a folder to create',
}


def _path_in_traceback(exc: BaseException) -> Optional[str]:
    """The file a JSON decoder was reading, from the traceback's frames."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        for name in ('annotation_file', 'ann_file', 'local_path', 'file',
                     'filename', 'filepath', 'path'):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, str) and os.path.isfile(value):
                found = value
                break
        tb = tb.tb_next
    return found


def _functions_in_traceback(exc: BaseException) -> set:
    names, tb = set(), exc.__traceback__
    while tb is not None:
        names.add(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def _worker_message(exc: BaseException, msg: str) -> str:
    """The original message of an error re-raised from a loader worker."""
    if 'Original Traceback' not in msg:
        return msg
    lines = msg.splitlines()
    starts = [
        i for i, line in enumerate(lines)
        if re.match(r'^[A-Za-z_.]*(Error|Exception): ', line)
    ]
    if not starts:
        return msg
    return '\n'.join(lines[starts[-1]:]).split(': ', 1)[1]


def describe_error(exc: BaseException) -> Optional[str]:
    """One line about an error caused by the input, or None for a bug."""
    from um_mae.engine.hooks import NonFiniteLossError
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    msg = _worker_message(exc, str(exc))
    frames = _functions_in_traceback(exc)
    for pattern, ours, *where in UPSTREAM_ERRORS:
        match = re.search(pattern, msg)
        if match and all(w in frames for w in where):
            return ours.format(*match.groups())
    if isinstance(exc, json.JSONDecodeError) or 'JSONDecodeError' in msg:
        path = _path_in_traceback(exc)
        where = f'{path} is' if path else 'an annotation file is'
        return (f'{where} not valid JSON ({msg.splitlines()[-1]}); '
                'regenerate or repair it')
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        hint = _OS_HINTS.get(exc.errno)
        if hint:
            # a link loop repeats the looping part: show it once
            target = re.sub(r'(/[^/]+)\1+', r'\1', str(exc.filename or ''))
            return f'cannot use {target}: {hint} ({exc.strerror})'
        return None
    if isinstance(exc, (UsageError, ValueError, TypeError, FileNotFoundError,
                        NonFiniteLossError)):
        return msg
    return None


def fail(msg: str) -> None:
    """Print ``error: msg`` (with the debug hint) and exit with code 1."""
    print(f'error: {msg}\n(set UM_MAE_DEBUG=1 for the traceback)',
          file=sys.stderr)
    sys.exit(1)


@contextlib.contextmanager
def user_errors():
    """Report errors caused by the input as one line, not a traceback.

    Errors :func:`describe_error` recognises end the run with
    ``error: <message>`` and exit code 1; others (bugs) propagate with their
    traceback. Set ``UM_MAE_DEBUG=1`` to get the traceback in every case.
    """
    try:
        yield
    except Exception as e:  # noqa: B902 - sorted out by describe_error
        if os.environ.get('UM_MAE_DEBUG'):
            raise
        msg = describe_error(e)
        if msg is None:
            raise
        fail(msg)
