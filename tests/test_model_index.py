# Copyright (c) um-mae contributors. All rights reserved.
"""The recipe record (``model-index.yml`` + metafiles) matches the configs.

Schema: OpenMMLab's model index (as mmpretrain / mmdet ship it, read by
``mim search``), extended with the recipe and where each value comes from.

``model-index.yml``::

    Import:
      - configs/<task>/<method>/metafile.yml

``configs/<task>/<method>/metafile.yml``::

    Collections:
      - Name: UM-MAE                   # unique over the whole index
        Metadata: {Training Data: ImageNet-1k, Architecture: [...]}
        Paper: {Title: ..., URL: ...}
    Models:
      - Name: <config file name without .py>
        In Collection: UM-MAE
        Config: configs/<task>/<method>/<Name>.py
        Metadata: {Training Data: ImageNet-1k, Epochs: 200,
                   Batch Size: 4096}   # images per update
        Results:                       # the paper's numbers this recipe
          - Task: Image Classification #   should reproduce; null for
            Dataset: ImageNet-1k       #   pre-training (its Downstream
            Metrics: {Top 1 Accuracy: 79.31}  # fine-tuning is scored)
        Downstream: [<Name>, ...]      # optional: configs scoring it
        Paper Row: UM-MAE Table 3, PVT-S UM-MAE
        Recipe:                        # what defines the recipe
          <Hyper-parameter>:           # a key of EXTRACTORS below
            Value: 200                 # checked against the built config
            Source: UM-MAE Table 8     # paper / official code location
            Official: 40               # optional: the official code's
                                       #   value where it differs
            Note: ...                  # optional
        Notes: [...]                   # optional, free text

Every ``Recipe`` key must have an extractor in :data:`EXTRACTORS` (one
function per hyper-parameter name, reading it from the built config); add
one there for a new name (e.g. detection / segmentation schedules). Every
non-demo config under ``configs/`` (``_base_`` files and ``*demo*``
configs excepted) must be listed by one metafile.
"""
import glob
import math
import os.path as osp

import pytest
import yaml
from conftest import load_config
from model_index_transfer import TRANSFER_EXTRACTORS

import um_mae  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
INDEX = osp.join(REPO, 'model-index.yml')


def _load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def _metafiles():
    return [osp.join(REPO, p) for p in _load_yaml(INDEX)['Import']]


def _models():
    models = []
    for path in _metafiles():
        if not osp.exists(path):
            continue  # reported by test_index_imports_exist
        for model in _load_yaml(path).get('Models') or []:
            models.append((osp.relpath(path, REPO), model))
    return models


def _collections():
    names = []
    for path in _metafiles():
        if osp.exists(path):
            names += [
                c['Name'] for c in _load_yaml(path).get('Collections') or []
            ]
    return names


MODELS = _models()
LISTED = {m.get('Config') for _, m in MODELS}
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and 'demo' not in osp.basename(p))


# ---------------------------------------------------------------- helpers
def _type(cfg_dict):
    """Registry name without scope: 'mmpretrain.RandAugment' -> ..."""
    t = cfg_dict.get('type', '')
    return t.split('.')[-1] if isinstance(t, str) else t.__name__


def _dataset(loader):
    ds = loader['dataset']
    while 'pipeline' not in ds and 'dataset' in ds:
        ds = ds['dataset']
    return ds


def _transform(pipeline, name, required=True):
    found = [t for t in pipeline if _type(t) == name]
    if not found and required:
        names = [_type(t) for t in pipeline]
        raise KeyError(f'no {name} in the pipeline {names}')
    return found[0] if found else None


def _train_transform(cfg, name, required=True):
    return _transform(
        _dataset(cfg.train_dataloader)['pipeline'], name, required)


def _eval_transform(cfg, name):
    """The val and test pipelines must agree; return the transform."""
    val = _dataset(cfg.val_dataloader)['pipeline']
    test = _dataset(cfg.test_dataloader)['pipeline']
    assert val == test, 'val and test pipelines differ'
    return _transform(val, name)


def _schedulers(cfg):
    sched = cfg.param_scheduler
    return sched if isinstance(sched, (list, tuple)) else [sched]


def _lr_scheduler(cfg):
    found = [s for s in _schedulers(cfg) if _type(s) == 'WarmupHalfCosineLR']
    if len(found) != 1 or len(_schedulers(cfg)) != 1:
        raise KeyError('expected one WarmupHalfCosineLR scheduler (the '
                       'official lr_sched.py), got '
                       f'{[_type(s) for s in _schedulers(cfg)]}')
    return found[0]


def _accum(cfg):
    return cfg.optim_wrapper.get('accumulative_counts', 1)


def _gpus(cfg):
    base = cfg.auto_scale_lr['base_batch_size']
    per_gpu = cfg.train_dataloader['batch_size']
    assert base % per_gpu == 0, (base, per_gpu)
    return base // per_gpu


def _images_per_update(cfg):
    return _gpus(cfg) * cfg.train_dataloader['batch_size'] * _accum(cfg)


def _mask_generator(cfg):
    return _train_transform(cfg, 'UniformMaskGenerator', required=False)


def _sampling(cfg):
    gen = _mask_generator(cfg)
    if gen is not None:
        return {
            'rs': 'RS',
            'random': 'RS',
            'gs': 'GS',
            'grid': 'GS',
            'us': 'US',
            'uniform': 'US',
            'um': 'UM'
        }[str(gen.get('strategy', 'UM')).lower()]
    if _type(cfg.model) in ('MAE', 'ReconstructingMAE'):
        return 'RS'  # mmpretrain's MAE draws random masks in the backbone
    raise KeyError('no mask generator in the pipeline and not an MAE model')


def _mask_ratio(cfg):
    gen = _mask_generator(cfg)
    if gen is not None:
        return gen.get('mask_ratio', 0.75)
    return cfg.model.backbone.get('mask_ratio', 0.75)


def _secondary_mask_ratio(cfg):
    gen = _mask_generator(cfg)
    if gen is None:
        return 0.
    default = 0.25 if _sampling(cfg) == 'UM' else 0.
    ratio = gen.get('secondary_mask_ratio')
    return default if ratio is None else ratio


def _decoder_depth(cfg):
    neck = cfg.model.neck
    return neck['depth'] if 'depth' in neck else neck['decoder_depth']


def _decoder_width(cfg):
    neck = cfg.model.neck
    return (neck['embed_dims']
            if 'embed_dims' in neck else neck['decoder_embed_dim'])


def _rand_augment(cfg):
    t = _train_transform(cfg, 'RandAugment')
    name = f"rand-m{t['magnitude_level']}-mstd{t['magnitude_std']}"
    if t['policies'] == 'timm_increasing':
        name += '-inc1'
    if t.get('num_policies', 2) != 2:
        name += f"-n{t['num_policies']}"
    return name


def _augment(cfg, name):
    for aug in cfg.model.train_cfg['augments']:
        if _type(aug) == name:
            return aug['alpha']
    raise KeyError(f'no {name} in model.train_cfg.augments')


def _layer_decay(cfg):
    constructor = cfg.optim_wrapper.get('constructor', '')
    if 'LayerDecay' not in constructor:
        return 1.0
    return cfg.optim_wrapper.paramwise_cfg.get('layer_decay_rate', 1.0)


def _no_weight_decay(cfg):
    """Which parameters a pre-training recipe exempts from weight decay."""
    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    if paramwise == {'flat_decay_mult': 0.}:
        return 'biases and 1-D tensors'
    return f'custom: {paramwise}'


def _pretrained_from(cfg):
    path = cfg.model.backbone.init_cfg['checkpoint']
    assert path.startswith('work_dirs/'), path
    return path.split('/')[1]


def _epochs(cfg):
    epochs = cfg.train_cfg['max_epochs']
    for sched in _schedulers(cfg):
        assert sched.get('end', epochs) == epochs, (
            f'a scheduler ends at {sched["end"]}, training at {epochs}')
    return epochs


#: Hyper-parameter name (a metafile ``Recipe`` key) -> its value in a
#: built config. One function per name; add names for new tasks here.
EXTRACTORS = {
    'Epochs':
    _epochs,
    'Warm-up Epochs':
    lambda c: _lr_scheduler(c)['warmup_epochs'],
    'LR Schedule':
    lambda c: _type(_lr_scheduler(c)),
    'Min LR':
    lambda c: _lr_scheduler(c).get('eta_min', 0.),
    'GPUs':
    _gpus,
    'Batch Size Per GPU':
    lambda c: c.train_dataloader['batch_size'],
    'Accumulation Steps':
    _accum,
    'Images Per Update':
    _images_per_update,
    'Base LR':
    lambda c: c.optim_wrapper.optimizer['lr'] * 256 / _images_per_update(c),
    'LR Scaling':
    lambda c: ('linear, per 256 images'
               if c.get('auto_scale_lr', {}).get('base_batch_size') == _gpus(c)
               * c.train_dataloader['batch_size'] else None),
    'Optimizer':
    lambda c: _type(c.optim_wrapper.optimizer),
    'Betas':
    lambda c: list(c.optim_wrapper.optimizer['betas']),
    'Weight Decay':
    lambda c: c.optim_wrapper.optimizer['weight_decay'],
    'No Weight Decay':
    _no_weight_decay,
    'Layer Decay':
    _layer_decay,
    'AMP':
    lambda c: _type(c.optim_wrapper) == 'AmpOptimWrapper',
    'Drop Path':
    lambda c: c.model.backbone.get('drop_path_rate', 0.),
    'Input Size':
    lambda c: _train_transform(c, 'RandomResizedCrop')['scale'],
    'Crop Scale Range':
    lambda c: list(
        _train_transform(c, 'RandomResizedCrop').get('crop_ratio_range',
                                                     (0.08, 1.0))),
    'Eval Resize':
    lambda c: _eval_transform(c, 'ResizeEdge')['scale'],
    'Eval Crop':
    lambda c: _eval_transform(c, 'CenterCrop')['crop_size'],
    'Sampling':
    _sampling,
    'Mask Ratio':
    _mask_ratio,
    'Secondary Mask Ratio':
    _secondary_mask_ratio,
    'Decoder Depth':
    _decoder_depth,
    'Decoder Width':
    _decoder_width,
    'Norm Pix Loss':
    lambda c: c.model.head['norm_pix'],
    'RandAugment':
    _rand_augment,
    'Random Erasing':
    lambda c: _train_transform(c, 'RandomErasing')['erase_prob'],
    'Label Smoothing':
    lambda c: c.model.head.loss['label_smooth_val'],
    'Mixup':
    lambda c: _augment(c, 'Mixup'),
    'CutMix':
    lambda c: _augment(c, 'CutMix'),
    'Pre-trained From':
    _pretrained_from,
}
# the detection / segmentation names (tests/model_index_transfer.py)
assert not set(EXTRACTORS) & set(TRANSFER_EXTRACTORS)
EXTRACTORS.update(TRANSFER_EXTRACTORS)


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


# ------------------------------------------------------------------ tests
def test_index_imports_exist():
    missing = [p for p in _metafiles() if not osp.exists(p)]
    assert not missing
    assert len(MODELS) > 0
    names = [m['Name'] for _, m in MODELS]
    assert len(names) == len(set(names)), 'duplicate model names'
    collections = _collections()
    assert len(collections) == len(set(collections))


def test_index_loads_with_modelindex():
    """`mim search` reads the index (the modelindex package)."""
    modelindex = pytest.importorskip('modelindex')
    index = modelindex.load(INDEX)
    assert len(index.models) == len(MODELS)


@pytest.mark.parametrize(
    'metafile,model', MODELS, ids=[m['Name'] for _, m in MODELS])
def test_model_record_matches_config(metafile, model):
    name = model['Name']
    config = model['Config']
    assert osp.exists(osp.join(REPO, config)), f'{name}: no {config}'
    assert osp.splitext(osp.basename(config))[0] == name
    assert osp.dirname(config) == osp.dirname(metafile), (
        'a metafile lists the configs of its own folder')
    assert model['In Collection'] in _collections()
    assert model.get('Paper Row'), f'{name}: which paper row is it?'
    results = model.get('Results')
    if results is not None:
        for r in results:
            assert {'Task', 'Dataset', 'Metrics'} <= set(r), r
    known = {m['Name'] for _, m in MODELS}
    for down in model.get('Downstream') or []:
        assert down in known, f'{name}: downstream {down} is not listed'

    recipe = model.get('Recipe') or {}
    assert recipe, f'{name}: no Recipe'
    cfg = load_config(config)
    wrong = []
    for key, entry in recipe.items():
        assert key in EXTRACTORS, (
            f'{name}: no extractor for {key!r}; add one to EXTRACTORS in '
            'tests/test_model_index.py')
        assert isinstance(entry, dict) and 'Value' in entry, (name, key)
        assert entry.get('Source'), f'{name}: {key} has no Source'
        actual = EXTRACTORS[key](cfg)
        if not _same(actual, entry['Value']):
            wrong.append(f'{key}: metafile {entry["Value"]!r} '
                         f'({entry["Source"]}), config {actual!r}')
    assert not wrong, f'{name} ({config}):\n  ' + '\n  '.join(wrong)

    meta = model.get('Metadata') or {}
    if 'Epochs' in meta and 'Epochs' in recipe:
        assert meta['Epochs'] == recipe['Epochs']['Value']
    if 'Batch Size' in meta and 'Images Per Update' in recipe:
        assert meta['Batch Size'] == recipe['Images Per Update']['Value']


@pytest.mark.parametrize('config', CONFIGS)
def test_config_is_listed(config):
    if config not in LISTED:
        pytest.fail(
            f'{config} is in no metafile: add it to the metafile.yml of its '
            'folder (and that metafile to model-index.yml), with its paper '
            'row and recipe values',
            pytrace=False)
