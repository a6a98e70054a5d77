# Copyright (c) um-mae contributors. All rights reserved.
"""Read a checkpoint file without running code from it.

:func:`read_checkpoint` is the one reader of checkpoint files in um_mae. It
tells the format by content, not by the file name:

* ``.safetensors`` files are read with the ``safetensors`` package;
* PyTorch files (``torch.save``, zip or legacy format) are read with
  ``torch.load(weights_only=True)``, which builds tensors and plain Python
  containers only. On top of torch's own allow-list, it accepts exactly
  what mmengine 0.10.7 runner checkpoints hold besides tensors: the message
  hub's ``HistoryBuffer`` (with numpy arrays and scalars), the numpy /
  python random states our ``RNGStateHook`` saves, and the
  ``argparse.Namespace`` that the official MAE / DeiT / UM-MAE training
  scripts store as ``'args'``;
* a zip checkpoint's CRC-32 checksums are verified first: bytes changed
  inside an intact file are refused, naming the tensor they belong to;
* anything else is refused with one line naming the file, what was found
  and the fix. A pickle that needs other Python objects is only unpickled
  when ``UM_MAE_UNSAFE_PICKLE=1`` is set: unpickling runs code from the
  file, so do that only for files you trust. Pre-trained weights and the
  converters never need it.
"""
import argparse
import os
import os.path as osp
import pickle
import re
import struct
import zipfile
from typing import Any, List, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

__all__ = [
    'UNSAFE_PICKLE_ENV', 'read_checkpoint', 'runner_checkpoint_globals',
    'cached_download_path', 'resolve_checkpoint_name'
]

UNSAFE_PICKLE_ENV = 'UM_MAE_UNSAFE_PICKLE'

_MAX_SAFETENSORS_HEADER = 100 * 2**20  # the format's own limit


def _history_buffer_method(owner: type, name: str) -> Any:
    """``getattr`` for unpickling, limited to HistoryBuffer's statistics.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would let a
    pickle walk from any allowed object to arbitrary code.
    """
    allowed = {'min', 'max', 'current', 'mean'} | set(
        HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refused getattr({getattr(owner, "__name__", owner)!r}, {name!r}):'
        ' only the statistics methods of mmengine.logging.HistoryBuffer '
        'are allowed')


def runner_checkpoint_globals() -> List[Any]:
    """The Python objects a ``weights_only`` load may build, beyond torch's.

    Exactly what mmengine 0.10.7 runner checkpoints (message hub, RNG
    states) and the official training scripts (``'args'``) store; entries
    are objects or ``(object, 'module.name')`` pairs for names that differ
    between numpy 1 and 2 or that are replaced by a restricted version.

    Returns:
        list: Entries for :func:`torch.serialization.safe_globals`.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    entries: List[Any] = [
        HistoryBuffer, np.ndarray, np.dtype, argparse.Namespace,
        (_history_buffer_method, 'builtins.getattr')
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    # numpy 2 pickles dtypes of arrays by their DType class
    entries += [(cls, f'numpy.dtypes.{cls.__name__}')
                for cls in vars(np.dtypes).values()
                if isinstance(cls, type) and issubclass(cls, np.dtype)]
    return entries


def _describe(head: bytes, size: int) -> str:
    """What a file that is no checkpoint looks like, for an error."""
    if size == 0:
        return 'an empty file'
    if head.startswith(b'\x1f\x8b'):
        return 'a gzip archive (unpack it first)'
    if len(head) > 262 and head[257:262] == b'ustar':
        return 'a tar archive (unpack it first)'
    try:
        text = head[:60].decode('utf-8')
    except UnicodeDecodeError:
        text = ''
    if text.strip() and all(c.isprintable() or c in '\r\n\t' for c in text):
        first = text.strip().splitlines()[0]
        return f'a text file starting with {first[:40]!r}'
    return f'{size} bytes of unknown binary data (starting {head[:8].hex()})'


def _sniff(path: str) -> str:
    """``'zip'``, ``'pickle'`` or ``'safetensors'``; ValueError otherwise."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(512)
    if head.startswith(b'PK\x03\x04'):
        return 'zip'
    # PROTO opcode with protocol 2-5: torch's legacy (non-zip) format
    if head[:1] == b'\x80' and head[1:2] in (b'\x02', b'\x03', b'\x04',
                                             b'\x05'):
        return 'pickle'
    if len(head) >= 9:
        header_len = struct.unpack('<Q', head[:8])[0]
        if head[8:9] == b'{' and header_len <= _MAX_SAFETENSORS_HEADER:
            return 'safetensors'
    found = _describe(head, size)
    if path.endswith('.safetensors'):
        raise ValueError(
            f'{path} is not a valid .safetensors file (found {found}); '
            'download it again')
    raise ValueError(
        f'{path} is not a checkpoint (found {found}); pass a PyTorch '
        'checkpoint (torch.save: .pth / .pt / .bin / .pth.tar) or a '
        '.safetensors file')


def _read_safetensors(path: str, map_location: Union[str, torch.device,
                                                     None]) -> dict:
    from safetensors.torch import load_file
    device = str(map_location) if isinstance(map_location,
                                             (str, torch.device)) else 'cpu'
    try:
        return load_file(path, device=device)
    except Exception as e:  # SafetensorError, OSError, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f'{path} is a corrupt or truncated .safetensors '
                         f'file ({msg}); download it again') from e


def _weights_only_detail(error: Exception) -> str:
    """The unpickler's own reason inside torch's long weights_only text."""
    text = str(error)
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:', 1)[1]
    boilerplate = ('Weights only load failed', 'Check the documentation',
                   'Please file an issue')
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.strip().startswith(boilerplate)
    ]
    return lines[0] if lines else type(error).__name__


def _unsafe_globals(path: str, kind: str, detail: str) -> List[str]:
    names = []
    if kind == 'zip':
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # fall back to the name in the error
            names = []
    if not names:
        names = re.findall(r'GLOBAL ([\w.]+)', detail)
    return names or [detail]


def _tensors(obj, where: str = ''):
    """(name, tensor) pairs of a loaded checkpoint, depth first."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f'{where}.{key}' if where else key)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f'{where}[{i}]')


def _tensors_of_bad_data(path: str, archive: zipfile.ZipFile) -> List[str]:
    """The tensors whose bytes match no checksum of the archive."""
    import zlib
    crcs = {info.CRC for info in archive.infolist()}
    try:
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # the structure itself is unreadable: no names
        return []
    bad, seen = [], set()
    for name, tensor in _tensors(loaded):
        storage = tensor.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() == 0:
            continue
        seen.add(storage.data_ptr())
        data = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
        if zlib.crc32(data) not in crcs:
            bad.append(name)
    return bad


def _check_zip(path: str) -> None:
    """Refuse a zip checkpoint that is no torch file or fails its CRCs.

    The zip format stores a CRC-32 of every entry; torch does not check
    them, so bytes overwritten inside an intact archive would load as
    weights. Reading every entry once costs about one read of the file.
    """
    import zlib
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(n.endswith('data.pkl') for n in names):
                raise ValueError(
                    f'{path} is a zip archive but not a PyTorch checkpoint '
                    f'(no data.pkl among {names[:5]}); pass the checkpoint '
                    'file')
            bad = archive.testzip()
            if bad is None:
                return
            tensors = _tensors_of_bad_data(path, archive)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f'{path} is a truncated or corrupt PyTorch checkpoint ({e});'
            ' copy or download it again') from e
    what = (f'the data of {", ".join(repr(t) for t in tensors[:3])}'
            if tensors else f'its entry {bad}')
    raise ValueError(
        f'{path} is corrupt: {what} does not match the checksum (CRC-32) '
        'stored in the file; copy or download it again')


def _read_torch(path: str, kind: str, map_location: Any) -> Any:
    if kind == 'zip':
        _check_zip(path)
    unsafe = os.environ.get(UNSAFE_PICKLE_ENV) == '1'
    if unsafe:
        print_log(
            f'{UNSAFE_PICKLE_ENV}=1: unpickling {path} with full Python '
            'object support (runs code from the file)',
            logger='current')
    try:
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            return torch.load(
                path, map_location=map_location, weights_only=not unsafe)
    except pickle.UnpicklingError as e:
        detail = _weights_only_detail(e)
        if not re.search(r'GLOBAL|global|reduce|build|refused|Can only',
                         detail):
            raise ValueError(f'{path} is a corrupt PyTorch checkpoint '
                             f'({detail}); copy or download it again') from e
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            offending = _unsafe_globals(path, kind, detail)
        raise ValueError(
            f'{path} holds pickled Python objects that are not weights or '
            f'runner state ({", ".join(offending)}); unpickling them would '
            f'run code from the file. If you trust it, set '
            f'{UNSAFE_PICKLE_ENV}=1 to load it anyway') from e
    except (RuntimeError, EOFError, OSError, struct.error) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f'{path} is a truncated or corrupt PyTorch '
                         f'checkpoint ({first}); copy or download it again') \
            from e


#: mmengine's model-zoo schemes -> (function of mmengine.runner.checkpoint
#: returning the name -> URL table, prefix length)
_ZOO_SCHEMES = {
    'torchvision://': 'get_torchvision_models',
    'modelzoo://': 'get_torchvision_models',
    'open-mmlab://': 'get_external_models',
    'openmmlab://': 'get_external_models',
    'mmcls://': 'get_mmcls_models',
}


def resolve_checkpoint_name(path: str) -> str:
    """The URL (or file) behind one of mmengine's model-zoo names.

    ``torchvision://resnet50``, ``open-mmlab://...`` and ``mmcls://...``
    are looked up in mmengine's tables; other paths are returned as they
    are.

    Raises:
        ValueError: The name is not in mmengine's table.
    """
    for scheme, table in _ZOO_SCHEMES.items():
        if not path.startswith(scheme):
            continue
        from mmengine.runner import checkpoint as mm_checkpoint
        urls = getattr(mm_checkpoint, table)()
        name = path[len(scheme):]
        if table == 'get_external_models':
            name = mm_checkpoint.get_deprecated_model_names().get(name, name)
        if name not in urls:
            raise ValueError(
                f'{path}: mmengine knows no model {name!r} under {scheme}; '
                'pass a local path or an http(s) URL of the checkpoint')
        url = urls[name]
        if not url.startswith(('http://', 'https://')):
            url = osp.join(mm_checkpoint._get_mmengine_home(), url)
        return url
    return path


def cached_download_path(url: str) -> str:
    """Where :func:`read_checkpoint` keeps the download of ``url``.

    The cache is keyed by the whole URL (a hash of it names the folder),
    so ``.../v1/model.pth`` and ``.../v2/model.pth`` are two files.
    """
    import hashlib
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = osp.basename(url.split('?')[0].split('#')[0]) or 'checkpoint'
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'um_mae', key, name)


def _fetch_error(url: str, reason: str) -> ValueError:
    return ValueError(
        f'cannot download {url} ({reason}); check the URL and the network, '
        'or download the file yourself and pass its local path')


def _download(url: str, timeout: float = 60) -> str:
    """Fetch ``url`` once into the cache; return the local path.

    The file is written to a temporary name in the cache folder and renamed
    only when the whole body arrived (its ``Content-Length`` when the
    server sends one), so a failed or partial download leaves nothing that
    a later run would take for the file.
    """
    import http.client
    import tempfile
    import urllib.error
    import urllib.request
    dst = cached_download_path(url)
    if osp.isfile(dst):
        return dst
    folder = osp.dirname(dst)
    os.makedirs(folder, exist_ok=True)
    print_log(f'downloading {url} to {dst}', logger='current')
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(dst)}.', suffix='.part', dir=folder)
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'um-mae'})
        with os.fdopen(fd, 'wb') as f, urllib.request.urlopen(
                request, timeout=timeout) as response:
            expected = response.headers.get('Content-Length')
            size = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                size += len(chunk)
            if expected is not None and size != int(expected):
                raise _fetch_error(
                    url, f'the connection ended after {size} of '
                    f'{expected} bytes')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except urllib.error.HTTPError as e:
        raise _fetch_error(url, f'HTTP {e.code} {e.reason}') from e
    except urllib.error.URLError as e:
        raise _fetch_error(url, str(e.reason)) from e
    except (OSError, http.client.HTTPException) as e:  # refused, reset...
        raise _fetch_error(url, str(e) or type(e).__name__) from e
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return dst


def read_checkpoint(
        path: Union[str, os.PathLike],
        map_location: Optional[Union[str, torch.device]] = 'cpu') -> Any:
    """Read a checkpoint file safely.

    Args:
        path (str | PathLike): Local path, an ``http(s)://`` URL (fetched
            once into ``torch.hub.get_dir()/checkpoints/um_mae``, see
            :func:`cached_download_path`) or one of mmengine's model-zoo
            names (``torchvision://``, ``open-mmlab://``, ``mmcls://``).
        map_location (str | torch.device, optional): Where to put the
            tensors, as in :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The stored object: for ``.safetensors`` a dict of tensors, for
        PyTorch files whatever was saved (usually a dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` cannot be downloaded, is no checkpoint, is
            truncated / corrupt, or
            holds pickled objects outside the allow-list (see the module
            docstring); the message names the file and the fix.
    """
    path = resolve_checkpoint_name(os.fspath(path))
    if path.startswith(('http://', 'https://')):
        path = _download(path)
    elif re.match(r'^[a-z][\w+.-]*://', path):
        raise ValueError(
            f'cannot read {path}: only local paths and http(s) URLs are '
            'supported; download the file and pass its local path')
    path = osp.expanduser(path)
    if osp.isdir(path):
        raise ValueError(f'{path} is a directory; pass the checkpoint file '
                         'inside it')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    kind = _sniff(path)
    if kind == 'safetensors':
        return _read_safetensors(path, map_location)
    return _read_torch(path, kind, map_location)
