# Copyright (c) um-mae contributors. All rights reserved.
"""``mmseg::`` bases when mmseg is installed under another pip name."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.config import utils as config_utils

from um_mae.engine import find_renamed_packages

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_TINY = osp.join(REPO, 'tests', 'data', 'configs',
                    'upernet_pvt-demo_demo-seg.py')


@pytest.fixture
def module2package():
    saved = dict(config_utils.MODULE2PACKAGE)
    yield config_utils.MODULE2PACKAGE
    config_utils.MODULE2PACKAGE.clear()
    config_utils.MODULE2PACKAGE.update(saved)


def test_only_missing_pip_names_of_present_modules_change(module2package):
    module2package.clear()
    module2package.update({
        'yaml': 'PyYAML',  # installed under its pip name: kept
        'addict': 'onedl-addict',  # pip name missing, module there
        'no_such_module': 'no-such-package',  # neither: kept
    })
    assert find_renamed_packages() == {'addict': 'onedl-addict'}
    assert module2package == {
        'yaml': 'PyYAML',
        'addict': 'addict',
        'no_such_module': 'no-such-package'
    }


@pytest.mark.dense
def test_mmseg_base_under_another_pip_name(module2package):
    # as on the OneDL fork: the mmseg module is there, its pip name is not
    module2package['mmseg'] = 'onedl-mmseg-not-installed'
    with pytest.raises(ModuleNotFoundError, match='is not installed'):
        Config.fromfile(SEG_TINY)
    assert find_renamed_packages() == {'mmseg': 'onedl-mmseg-not-installed'}
    cfg = Config.fromfile(SEG_TINY)
    assert cfg.default_scope == 'mmseg'
