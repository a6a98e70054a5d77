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


find_renamed_packages()
