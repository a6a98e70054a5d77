# Copyright (c) um-mae contributors. All rights reserved.
"""Read the toolboxes' metafiles once per test process.

A config that inherits ``mmdet::`` / ``mmseg::`` / ``mmpretrain::`` bases
makes mmengine (``mmengine.config.utils._get_cfg_metainfo``) parse the
package's ``model-index.yml`` and every metafile it imports (about 100 YAML
files for mmdet) for each such base, every time the config is loaded:
0.2-0.3 s per base, about half of ``Config.fromfile`` for a detection or
segmentation config. The tests load the shipped configs hundreds of times.
:func:`install` memoizes that function per ``(package, config)``: the
answer is computed by mmengine's own code the first time, and the installed
metafiles do not change during a test session. A lookup that fails raises
the same ``ValueError`` again (mmengine then takes the base from
``.mim/configs``, as without the cache). The YAML files themselves are read
once per process too, so that a new name costs a search, not a parse;
:func:`warm` reads those of every installed toolbox in advance (the tool
server does, before it forks the launchers' runs).

Installed by ``tests/conftest.py`` (every pytest process) and by
``tests/tool_server.py`` (the launchers' forked runs); nothing under
``um_mae/`` or ``tools/`` depends on it.
"""
import copy
import functools
import os


def install() -> None:
    """Memoize mmengine's metafile lookup in this process (idempotent)."""
    from mmengine.config import utils
    original = utils._get_cfg_metainfo
    if getattr(original, 'um_mae_memoized', False):
        return

    @functools.lru_cache(maxsize=None)
    def lookup(package_path: str, cfg_path: str):
        try:
            return original(package_path, cfg_path), None
        except ValueError as error:
            return None, error.args

    @functools.wraps(original)
    def memoized(package_path: str, cfg_path: str) -> dict:
        found, error = lookup(package_path, cfg_path)
        if error is not None:
            raise ValueError(*error)
        return copy.deepcopy(found)

    memoized.um_mae_memoized = True
    utils._get_cfg_metainfo = memoized
    utils.load = _read_metafiles_once(utils.load)


def _read_metafiles_once(load):
    """``load`` that parses each installed ``.mim`` YAML file once (the
    metafile lookup, the only user of ``load`` in mmengine.config.utils,
    only reads what it gets)."""

    @functools.lru_cache(maxsize=None)
    def parsed(path: str):
        return load(path)

    @functools.wraps(load)
    def read(file, *args, **kwargs):
        if (not args and not kwargs and isinstance(file, str)
                and f'{os.sep}.mim{os.sep}' in file
                and file.endswith(('.yml', '.yaml'))):
            return parsed(file)
        return load(file, *args, **kwargs)

    read.cache_info = parsed.cache_info
    return read


def warm() -> None:
    """Read the metafiles of every installed toolbox now (see
    :func:`install`)."""
    from mmengine.config import utils
    from mmengine.utils import get_installed_path, is_installed
    for package in ('mmpretrain', 'mmdet', 'mmseg'):
        if is_installed(package):
            try:  # no config has this name: every metafile is read
                utils._get_cfg_metainfo(get_installed_path(package), '')
            except ValueError:
                pass
