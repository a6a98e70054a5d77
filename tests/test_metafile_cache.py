# Copyright (c) um-mae contributors. All rights reserved.
"""The tests' memo of mmengine's metafile lookup (``metafile_cache``)
answers as mmengine does."""
import os.path as osp

import pytest
from metafile_cache import warm
from mmengine.config import Config, utils
from mmengine.utils import get_installed_path

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# a shipped config whose bases come from mmdet (``mmdet::`` bases)
DET = osp.join(REPO, 'configs', 'det', 'mask_rcnn',
               'mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_'
               'coco.py')

pytestmark = pytest.mark.dense  # mmdet's metafiles


def test_installed_in_every_test_process():
    assert getattr(utils._get_cfg_metainfo, 'um_mae_memoized', False)


def test_same_answer_and_same_error_as_mmengine():
    memoized = utils._get_cfg_metainfo
    original = memoized.__wrapped__
    package = get_installed_path('mmdet')
    name = 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'  # a metafile's key
    first = memoized(package, name)
    assert first == original(package, name)
    first['Config'] = 'changed by a caller'
    assert memoized(package, name) == original(package, name)
    # a base config is no model of the metafiles: mmengine's ValueError
    base = '_base_/models/mask-rcnn_r50_fpn'
    with pytest.raises(ValueError) as expected:
        original(package, base)
    for _ in range(2):
        with pytest.raises(ValueError) as raised:
            memoized(package, base)
        assert raised.value.args == expected.value.args


def test_config_loads_as_without_the_memo(monkeypatch):
    cached = Config.fromfile(DET)
    monkeypatch.setattr(utils, '_get_cfg_metainfo',
                        utils._get_cfg_metainfo.__wrapped__)
    assert Config.fromfile(DET).to_dict() == cached.to_dict()


def test_warm_reads_every_metafile_once(monkeypatch):
    """After :func:`warm`, mmengine's own (unmemoized) lookup parses no YAML
    file again, and answers as when it reads the files itself."""
    warm()
    parsed = utils.load.cache_info().misses
    assert parsed > 100  # mmpretrain's, mmdet's and mmseg's metafiles
    package = get_installed_path('mmseg')
    name = 'upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'
    found = utils._get_cfg_metainfo.__wrapped__(package, name)
    assert utils.load.cache_info().misses == parsed
    monkeypatch.setattr(utils, 'load', utils.load.__wrapped__)
    assert found == utils._get_cfg_metainfo.__wrapped__(package, name)
