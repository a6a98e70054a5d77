# Copyright (c) um-mae contributors. All rights reserved.
"""um_mae modules are reachable from configs of all three toolboxes.

Each config names ``custom_imports=dict(imports=['um_mae'])``; loading it
must import um_mae (registering its modules) and the toolbox's own registry
must build the scoped type ``mmpretrain.<Name>``.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'mmpretrain':
    'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py',
    'mmdet': 'tests/data/configs/gfl_pvt-demo_demo-coco.py',
    'mmseg': 'tests/data/configs/upernet_pvt-demo_demo-seg.py',
}

# A fresh interpreter, so that nothing but the config imports um_mae.
SCRIPT = r'''
import sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
assert 'um_mae' not in sys.modules
cfg = Config.fromfile(sys.argv[1], import_custom_modules=True)
assert 'um_mae' in sys.modules, 'custom_imports did not import um_mae'
scope = cfg.default_scope
assert scope == sys.argv[2], scope
init_default_scope(scope)
registry = {
    'mmpretrain': 'mmpretrain.registry',
    'mmdet': 'mmdet.registry',
    'mmseg': 'mmseg.registry',
}[scope]
MODELS = __import__(registry, fromlist=['MODELS']).MODELS
model = MODELS.build(cfg.model)
backbone = model.backbone
print(type(model).__name__, type(backbone).__module__, type(backbone).__name__)
'''


@pytest.mark.parametrize('scope', [
    pytest.param(scope, marks=[pytest.mark.dense] if scope != 'mmpretrain'
                 else []) for scope in CONFIGS
])
def test_config_reaches_um_mae(scope):
    proc = subprocess.run(
        [sys.executable, '-c', SCRIPT, CONFIGS[scope], scope],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, module, backbone = proc.stdout.split()[-3:]
    assert module.startswith('um_mae.models.backbones')
    assert backbone == 'UMPVT'


def test_pretrain_only_install_imports_and_names_the_missing_neck(tmp_path):
    """Without mmdet / mmseg / mmcv.ops (``--pretrain-only``) um_mae still
    imports; the necks built on mmseg's Feature2Pyramid say what to add."""
    (tmp_path / 'sitecustomize.py').write_text(
        'import sys\n'
        "for name in ('mmdet', 'mmseg', 'mmcv.ops'):\n"
        '    sys.modules[name] = None\n')
    script = ('import um_mae\n'
              'from mmpretrain.registry import MODELS\n'
              "MODELS.build(dict(type='ViTSimplePyramid', embed_dim=8))\n")
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('ImportError: the ViT pyramid necks are mmseg')
    assert last.endswith('`bash tools/install.sh --with-ops`')


# What `import um_mae` may do: register modules. Nothing else changes and
# nothing of the tool layer (um_mae.toolkit) is loaded.
NO_EFFECTS = r'''
import sys
from mmengine.config import utils
# as on the OneDL fork: the mmseg module is there, its pip name is not
utils.MODULE2PACKAGE['mmseg'] = 'onedl-mmseg-not-installed'
before = dict(utils.MODULE2PACKAGE)
import um_mae
assert utils.MODULE2PACKAGE == before, 'import um_mae edited MODULE2PACKAGE'
print(' '.join(sorted(m for m in sys.modules if m.startswith('um_mae'))))
'''


def test_import_um_mae_only_registers():
    proc = subprocess.run([sys.executable, '-c', NO_EFFECTS],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = proc.stdout.split()
    assert 'um_mae.models.backbones.pvt' in loaded
    # the tool layer (launcher, benchmark, demo data, data checks) is not
    # part of the library
    tools = [m for m in loaded if m.startswith('um_mae.toolkit')]
    assert tools == [], f'import um_mae loaded the tool layer: {tools}'
