# Copyright (c) um-mae contributors. All rights reserved.
"""Find the data problems that training would pass over in silence.

mmdet drops COCO boxes that are empty, outside their image, not finite or of
an unknown category without a word; mmpretrain's folder scan skips dangling
symbolic links; mmseg trains on label maps of another size than their image
and on values that are no class. Each check here reads the files as the
toolbox would and returns a :class:`DataReport` with counts and examples.
``tools/check_dataset.py`` runs them on a config's datasets; the training
logs a one-line summary of the dropped COCO annotations
(:class:`~um_mae.engine.DataSummaryHook`).
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from um_mae.datasets.coco_drops import (coco_drop_reasons,
                                        coco_training_summary,
                                        usable_annotations_error)

__all__ = [
    'DataReport', 'IMAGE_EXTENSIONS', 'check_image_folder', 'check_coco',
    'coco_drop_reasons', 'coco_training_summary', 'usable_annotations_error',
    'check_seg_folders', 'check_dataset_config', 'check_image_list'
]

#: the extensions mmpretrain's folder datasets read
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')
_EXAMPLES = 5


class DataReport:
    """Counts of what a check found, with a few examples of each problem.

    Args:
        name (str): What was checked (shown in the report).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: 'OrderedDict[str, int]' = OrderedDict()
        self.problems: 'OrderedDict[str, List[str]]' = OrderedDict()
        self._problem_counts: Dict[str, int] = {}

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to a plain count (images, annotations, ...)."""
        self.counts[what] = self.counts.get(what, 0) + n

    def problem(self, kind: str, example: str) -> None:
        """Record one occurrence of a problem, keeping a few examples."""
        self._problem_counts[kind] = self._problem_counts.get(kind, 0) + 1
        examples = self.problems.setdefault(kind, [])
        if len(examples) < _EXAMPLES:
            examples.append(example)

    def problem_count(self, kind: str) -> int:
        return self._problem_counts.get(kind, 0)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the counts and the number of each problem."""
        counts = ', '.join(f'{n} {what}' for what, n in self.counts.items())
        if self.ok:
            return f'{self.name}: {counts}; no problem found'
        problems = '; '.join(f'{self.problem_count(k)} {k}'
                             for k in self.problems)
        return f'{self.name}: {counts}; PROBLEMS: {problems}'

    def __str__(self) -> str:
        lines = [self.summary()]
        for kind, examples in self.problems.items():
            lines.append(f'  {kind} ({self.problem_count(kind)}), e.g.:')
            lines += [f'    {e}' for e in examples]
        return '\n'.join(lines)


def _walk_images(folder: str, report: DataReport,
                 extensions: Sequence[str]) -> Iterable[str]:
    """Image paths under ``folder``; links that lead nowhere are reported."""
    seen = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = osp.realpath(root)
        if real in seen:  # a link back up the tree
            report.problem('symbolic link loops', root)
            dirs[:] = []
            continue
        seen.add(real)
        for name in sorted(files):
            path = osp.join(root, name)
            if osp.islink(path) and not osp.exists(path):
                try:
                    os.stat(path)
                except OSError as e:
                    loop = 'too many levels' in str(e).lower()
                    report.problem(
                        'symbolic link loops' if loop else
                        'dangling symbolic links (skipped by training)',
                        f'{path} -> {os.readlink(path)}')
                continue
            if name.lower().endswith(tuple(extensions)):
                yield path


def _read_image(path: str, full: bool) -> Tuple[Optional[str], str, tuple]:
    """(problem kind or None, detail, (height, width)) of an image file."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            mode, size = img.mode, img.size
            if full:
                img.load()
    except Exception as e:  # unreadable, truncated, not an image
        return 'unreadable images', f'{type(e).__name__}: {e}', ()
    if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        return ('16-bit images (scaled to 8 bits by '
                'CheckedLoadImageFromFile)', mode, size[::-1])
    return None, '', size[::-1]


def check_image_folder(folder: str,
                       extensions: Sequence[str] = IMAGE_EXTENSIONS,
                       full: bool = False) -> DataReport:
    """Check the images of a folder (recursively).

    Args:
        folder (str): The folder.
        extensions (Sequence[str]): Image extensions. Defaults to
            :data:`IMAGE_EXTENSIONS`.
        full (bool): Decode every image completely (finds truncated files;
            slower). Defaults to False (headers only).

    Returns:
        DataReport: Counts of images; problems: unreadable images, 16-bit
        images, dangling links and link loops, an empty folder.
    """
    report = DataReport(f'images in {folder}')
    report.count('images', 0)
    for path in _walk_images(folder, report, extensions):
        report.count('images')
        kind, detail, _ = _read_image(path, full)
        if kind:
            report.problem(kind, f'{path} ({detail})')
    if report.counts['images'] == 0:
        report.problem('empty: no image found',
                       f'{folder} (extensions {", ".join(extensions)})')
    return report


def check_coco(ann_file: str,
               img_dir: Optional[str] = None,
               classes: Optional[Sequence[str]] = None,
               filter_empty_gt: bool = True,
               min_size: int = 0,
               min_usable_fraction: float = 0.0) -> DataReport:
    """Check a COCO annotation file (and its images).

    Args:
        ann_file (str): ``instances_*.json``.
        img_dir (str, optional): Folder of the images; their presence and
            readability are checked. Defaults to None.
        classes (Sequence[str], optional): The class names the config
            trains. Defaults to None (all categories of the file).
        filter_empty_gt (bool): The dataset's ``filter_cfg`` value.
            Defaults to True (the shipped configs').
        min_size (int): The dataset's ``filter_cfg.min_size``. Defaults
            to 0.
        min_usable_fraction (float): ``DataSummaryHook``'s threshold.
            Defaults to 0 (stop only when no annotation is usable).

    Returns:
        DataReport: Counts of images / annotations; problems: annotations
        mmdet would drop (by reason), images skipped or trained as
        background only, a file training refuses, missing or unreadable
        images.
    """
    report = DataReport(ann_file)
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        report.problem('not valid JSON', f'{ann_file}: {e}')
        return report
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            report.problem(f'no "{key}" list', ann_file)
    if not report.ok:
        return report
    report.count('images', len(coco['images']))
    report.count('annotations', len(coco['annotations']))
    if classes is not None:
        names = {c['name'] for c in coco['categories']}
        for name in classes:
            if name not in names:
                report.problem('config classes missing from the file', name)
    summary = coco_training_summary(coco, classes, filter_empty_gt,
                                    min_size)
    reasons = summary['reasons']
    for ann in coco['annotations']:
        if ann.get('id') in reasons:
            report.problem(
                reasons[ann.get('id')],
                f'annotation id {ann.get("id")} (image {ann.get("image_id")}'
                f', category {ann.get("category_id")}, bbox '
                f'{ann.get("bbox")})')
    stop = usable_annotations_error(ann_file, summary, min_usable_fraction)
    if stop:
        report.problem('training stops (DataSummaryHook)', stop)
    background = set(summary['background'])
    for img in coco['images']:
        if img['id'] in summary['skipped']:
            report.problem('images skipped in training',
                           f'{img.get("file_name")} '
                           f'({summary["skipped"][img["id"]]})')
        elif img['id'] in background:
            report.problem(
                'images trained as background only (every box dropped)',
                f'{img.get("file_name")}')
        if img_dir is not None:
            path = osp.join(img_dir, img.get('file_name', ''))
            if not osp.isfile(path):
                report.problem('missing image files', path)
            else:
                kind, detail, hw = _read_image(path, full=False)
                if kind:
                    report.problem(kind, f'{path} ({detail})')
                elif hw and hw != (img.get('height'), img.get('width')):
                    report.problem(
                        'images of another size than the file says',
                        f'{path}: {hw[0]}x{hw[1]} vs '
                        f'{img.get("height")}x{img.get("width")}')
    return report


def check_seg_folders(img_dir: str,
                      ann_dir: str,
                      num_classes: int,
                      img_suffix: str = '.jpg',
                      seg_map_suffix: str = '.png',
                      reduce_zero_label: bool = False,
                      ignore_index: int = 255) -> DataReport:
    """Check an mmseg image folder against its label folder.

    Args:
        img_dir (str): Images.
        ann_dir (str): Label maps (same relative names, other suffix).
        num_classes (int): Classes the config trains.
        img_suffix (str): Image suffix. Defaults to ``'.jpg'``.
        seg_map_suffix (str): Label suffix. Defaults to ``'.png'``.
        reduce_zero_label (bool): Label 0 is ignored and every other label
            moves down by one (ADE20K). Defaults to False.
        ignore_index (int): The label that is ignored. Defaults to 255.

    Returns:
        DataReport: Counts of pairs; problems: images without a label map
        and label maps without an image, labels that are not single-channel,
        label values that are no class, label maps of another size.
    """
    from PIL import Image
    report = DataReport(f'{img_dir} + {ann_dir}')
    imgs = {
        osp.relpath(p, img_dir)[:-len(img_suffix)]: p
        for p in _walk_images(img_dir, report, (img_suffix, ))
    }
    segs = {
        osp.relpath(p, ann_dir)[:-len(seg_map_suffix)]: p
        for p in _walk_images(ann_dir, report, (seg_map_suffix, ))
    }
    for key in sorted(set(imgs) - set(segs)):
        report.problem('images without a label map', imgs[key])
    for key in sorted(set(segs) - set(imgs)):
        report.problem('label maps without an image', segs[key])
    report.count('image / label pairs', 0)
    for key in sorted(set(imgs) & set(segs)):
        report.count('image / label pairs')
        try:
            with Image.open(segs[key]) as seg:
                seg_mode = seg.mode
                label = np.array(seg)
            with Image.open(imgs[key]) as img:
                img_hw = img.size[::-1]
        except Exception as e:  # unreadable
            report.problem('unreadable files', f'{segs[key]}: {e}')
            continue
        if label.ndim != 2 or seg_mode in ('RGB', 'RGBA'):
            report.problem(
                'label maps that are not single-channel (colour-coded?)',
                f'{segs[key]} (mode {seg_mode})')
            continue
        if label.shape != tuple(img_hw):
            report.problem(
                'label maps of another size than their image',
                f'{segs[key]}: {label.shape[0]}x{label.shape[1]} vs image '
                f'{img_hw[0]}x{img_hw[1]}')
        values = np.unique(label).astype(np.int64)
        if reduce_zero_label:
            values = values[values != 0] - 1
        bad = [
            int(v) for v in values
            if v != ignore_index and not 0 <= v < num_classes
        ]
        if bad:
            report.problem(
                f'label values outside 0..{num_classes - 1} and '
                f'{ignore_index}', f'{segs[key]}: {bad[:8]}')
    return report


def _dataset_class(ds_cfg: dict, scope: str):
    """The dataset class a config entry builds (None if unknown)."""
    import importlib

    from mmengine.registry import DATASETS, DefaultScope
    name = str(ds_cfg.get('type'))
    if '.' in name:
        scope, name = name.split('.', 1)
    if scope in ('mmdet', 'mmseg', 'mmpretrain'):
        importlib.import_module(f'{scope}.datasets')
    with DefaultScope.overwrite_default_scope(scope):
        registry = DATASETS
        if scope:
            registry = importlib.import_module(f'{scope}.registry').DATASETS
        return registry.get(name)


def _default(cls, name: str, fallback=None):
    import inspect
    try:
        param = inspect.signature(cls.__init__).parameters.get(name)
    except (TypeError, ValueError):
        return fallback
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default


def check_dataset_config(ds_cfg: dict,
                         scope: str,
                         full: bool = True,
                         min_usable_fraction: float = 0.0
                         ) -> List[DataReport]:
    """Check the files of one dataset entry of a config.

    Dataset wrappers (``RepeatDataset``, ``PerSampleSeedDataset``,
    ``ConcatDataset`` ...) are unwrapped. COCO datasets, mmseg folder
    datasets and mmpretrain image datasets are understood.

    Args:
        ds_cfg (dict): ``train_dataloader.dataset`` or similar.
        scope (str): The config's ``default_scope``.
        full (bool): Decode images completely (finds truncated files).
            Defaults to True.
        min_usable_fraction (float): ``DataSummaryHook``'s threshold of
            usable COCO annotations. Defaults to 0.

    Returns:
        list[DataReport]: One report per dataset found.
    """
    if isinstance(ds_cfg.get('dataset'), dict):
        return check_dataset_config(ds_cfg['dataset'], scope, full,
                                    min_usable_fraction)
    if isinstance(ds_cfg.get('datasets'), list):
        return [
            r for d in ds_cfg['datasets'] for r in check_dataset_config(
                d, scope, full, min_usable_fraction)
        ]
    cls = _dataset_class(ds_cfg, scope)
    root = ds_cfg.get('data_root') or ''
    prefix = ds_cfg.get('data_prefix') or {}
    metainfo = ds_cfg.get('metainfo') or getattr(cls, 'METAINFO', {}) or {}
    classes = metainfo.get('classes')
    names = [c.__name__ for c in getattr(cls, '__mro__', [])]
    if 'CocoDataset' in names:
        filter_cfg = ds_cfg.get('filter_cfg') or {}
        return [
            check_coco(
                osp.join(root, ds_cfg.get('ann_file', '')),
                osp.join(root, prefix.get('img', '')), classes,
                bool(filter_cfg.get('filter_empty_gt', False))
                and not ds_cfg.get('test_mode', False),
                filter_cfg.get('min_size', 0), min_usable_fraction)
        ]
    if 'BaseSegDataset' in names:
        return [
            check_seg_folders(
                osp.join(root, prefix.get('img_path', '')),
                osp.join(root, prefix.get('seg_map_path', '')),
                num_classes=len(classes or ()),
                img_suffix=ds_cfg.get('img_suffix',
                                      _default(cls, 'img_suffix', '.jpg')),
                seg_map_suffix=ds_cfg.get(
                    'seg_map_suffix', _default(cls, 'seg_map_suffix',
                                               '.png')),
                reduce_zero_label=ds_cfg.get(
                    'reduce_zero_label',
                    _default(cls, 'reduce_zero_label', False)),
                ignore_index=ds_cfg.get('ignore_index', 255))
        ]
    folder = prefix.get('img_path', prefix) if isinstance(prefix,
                                                          dict) else prefix
    if isinstance(folder, dict):
        folder = ''
    ann_file, split = ds_cfg.get('ann_file'), ds_cfg.get('split')
    if split:  # as mmpretrain's ImageNet resolves its split
        folder = folder or split
        listed = osp.join('meta', f'{split}.txt')
        if not ann_file and osp.isfile(osp.join(root, listed)):
            ann_file = listed
    if ann_file:  # an image list (ImageNet's meta/train.txt): what is read
        return [
            check_image_list(
                osp.join(root, ann_file), osp.join(root, folder), full=full)
        ]
    return [check_image_folder(osp.join(root, folder), full=full)]


def check_image_list(ann_file: str, folder: str,
                     full: bool = True) -> DataReport:
    """Check the images an mmpretrain list file names (``meta/train.txt``).

    Each line is ``relative/path.jpg [label]``, relative to ``folder``, as
    mmpretrain's ``CustomDataset`` / ``ImageNet`` read it.

    Args:
        ann_file (str): The list file.
        folder (str): The folder the paths are relative to.
        full (bool): Decode every image completely. Defaults to True.

    Returns:
        DataReport: Counts of listed images; problems: a missing list,
        listed files that are missing or unreadable, 16-bit images.
    """
    report = DataReport(f'images listed in {ann_file}')
    report.count('images', 0)
    if not osp.isfile(ann_file):
        report.problem('missing list file', ann_file)
        return report
    with open(ann_file) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            path = osp.join(folder, line.strip().rsplit(' ', 1)[0]
                            if ' ' in line.strip() else line.strip())
            report.count('images')
            if not osp.isfile(path):
                report.problem('listed image files that are missing',
                               f'{path} (line {number})')
                continue
            kind, detail, _ = _read_image(path, full)
            if kind:
                report.problem(kind, f'{path} ({detail})')
    if report.counts['images'] == 0:
        report.problem('empty: the list names no image', ann_file)
    return report
