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
``.mim/configs``, as without the cache).

Installed by ``tests/conftest.py`` (every pytest process) and by
``tests/tool_server.py`` (the launchers' forked runs); nothing under
``um_mae/`` or ``tools/`` depends on it.
"""
import copy
import functools


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
