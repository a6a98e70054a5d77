# Copyright (c) um-mae contributors. All rights reserved.
"""``mmseg::`` config bases on the OneDL fork of the OpenMMLab stack.

mmengine finds the package behind a ``scope::`` base by its pip name
(``MODULE2PACKAGE``: ``mmseg`` -> ``mmsegmentation``). The OneDL fork
installs the same modules under other pip names (``onedl-mmsegmentation``),
so onedl-mmengine 0.10.12 stops every config with an ``mmseg::`` base with
"mmsegmentation is not installed". Where a pip name is absent but its module
is there, we point mmengine at the module (it then finds the configs shipped
in the module's folder). Nothing changes where the pip name is installed
(the upstream stack).

mmengine resolves the bases while it parses a config, before the config's
``custom_imports`` run, so the config cannot ask for this itself: the
launcher calls :func:`find_renamed_packages` before it loads a config
(``tools/train.py``, ``tools/test.py``), and so must a script that calls
``Config.fromfile`` on the fork. ``import um_mae`` changes nothing.
"""
import importlib.util
from importlib.metadata import PackageNotFoundError, distribution

from mmengine.config import utils as config_utils

__all__ = ['find_renamed_packages']


def find_renamed_packages() -> dict:
    """Map scopes whose pip name is missing to their importable module.

    Returns:
        dict: The scopes changed, ``{scope: previous pip name}``.
    """
    changed = {}
    for module, package in list(config_utils.MODULE2PACKAGE.items()):
        if module == package:
            continue
        try:
            distribution(package)
        except PackageNotFoundError:
            if importlib.util.find_spec(module) is not None:
                config_utils.MODULE2PACKAGE[module] = module
                changed[module] = package
    return changed
