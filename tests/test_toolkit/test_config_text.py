# Copyright (c) um-mae contributors. All rights reserved.
"""``config_text_once``: the launchers format a config's text once."""
from unittest import mock

from mmengine.config import Config
from yapf.yapflib.yapf_api import FormatCode

from um_mae.toolkit.cli import config_text_once

DEMO = 'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py'


def test_same_text_formatted_once_and_a_change_is_formatted_anew():
    cfg = Config.fromfile(DEMO)
    expected = cfg.pretty_text
    with mock.patch('mmengine.config.config.FormatCode',
                    wraps=FormatCode) as format_code, config_text_once():
        assert cfg.pretty_text == expected
        assert Config.fromfile(DEMO).pretty_text == expected  # a copy
        assert format_code.call_count == 1
        cfg.train_cfg.max_epochs = 3
        changed = cfg.pretty_text
        assert format_code.call_count == 2
        assert 'max_epochs=3' in changed and changed != expected
    # outside, mmengine's property again
    assert isinstance(Config.__dict__['pretty_text'], property)
    cfg.train_cfg.max_epochs = 4
    assert 'max_epochs=4' in cfg.pretty_text
