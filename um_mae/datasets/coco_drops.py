# Copyright (c) um-mae contributors. All rights reserved.
"""The COCO annotations mmdet drops without a word, and why.

Used by the training log (:class:`~um_mae.engine.DataSummaryHook`) and by
``tools/check_dataset.py`` (:mod:`um_mae.toolkit.checks`).
"""
import math
from typing import Dict, Optional, Sequence

__all__ = [
    'coco_drop_reasons', 'coco_training_summary', 'usable_annotations_error'
]


def coco_drop_reasons(coco: dict,
                      classes: Optional[Sequence[str]] = None
                      ) -> Dict[int, str]:
    """Why mmdet's ``CocoDataset`` drops each annotation it drops.

    Args:
        coco (dict): The loaded annotation file.
        classes (Sequence[str], optional): The config's class names; a
            category not among them is dropped. Defaults to None (all
            categories of the file).

    Returns:
        dict: annotation id -> reason, for the dropped annotations only.
    """
    images = {img['id']: img for img in coco.get('images', [])}
    cats = {c['id']: c['name'] for c in coco.get('categories', [])}
    reasons = {}
    for ann in coco.get('annotations', []):
        if ann.get('ignore', False):
            continue
        box = ann.get('bbox') or []
        img = images.get(ann.get('image_id'))
        cat = ann.get('category_id')
        if len(box) != 4 or not all(
                isinstance(v, (int, float)) and math.isfinite(v)
                for v in box):
            reason = 'boxes that are not 4 finite numbers'
        elif img is None:
            reason = 'annotations of an image id not in "images"'
        elif cat not in cats or (classes is not None
                                 and cats[cat] not in classes):
            reason = ('annotations of an unknown category id' if cat
                      not in cats else
                      'annotations of a category the config does not train')
        else:
            x, y, w, h = box
            inter_w = max(0, min(x + w, img['width']) - max(x, 0))
            inter_h = max(0, min(y + h, img['height']) - max(y, 0))
            if w < 1 or h < 1 or ann.get('area', 1) <= 0:
                reason = 'boxes of zero or negative size (w or h < 1)'
            elif inter_w * inter_h == 0:
                reason = 'boxes outside their image'
            else:
                continue
        reasons[ann.get('id')] = reason
    return reasons


def coco_training_summary(coco: dict,
                          classes: Optional[Sequence[str]] = None,
                          filter_empty_gt: bool = False,
                          min_size: int = 0) -> dict:
    """What mmdet 3.3's ``CocoDataset`` trains from an annotation file.

    The one source of the rule for ``tools/check_dataset.py`` and
    :class:`~um_mae.engine.DataSummaryHook`. mmdet drops the annotations
    :func:`coco_drop_reasons` names; its ``filter_empty_gt`` skips only the
    images without any annotation of a trained category (valid or not), so
    an image whose every box is dropped is trained as background.

    Args:
        coco (dict): The loaded annotation file.
        classes (Sequence[str], optional): The trained class names.
        filter_empty_gt (bool): ``filter_cfg.filter_empty_gt`` of the
            dataset. Defaults to False (mmdet's default).
        min_size (int): ``filter_cfg.min_size``. Defaults to 0.

    Returns:
        dict: ``reasons`` (annotation id -> why dropped), ``annotations``
        (their number), ``usable`` (kept annotations), ``skipped`` (image
        id -> why not trained), ``background`` (trained image ids without a
        usable box).
    """
    reasons = coco_drop_reasons(coco, classes)
    cats = {c['id']: c['name'] for c in coco.get('categories', [])}
    trained = {i for i, n in cats.items() if classes is None or n in classes}
    anns = coco.get('annotations', [])
    in_cat = {a.get('image_id') for a in anns if a.get('category_id') in
              trained}
    with_box = {a.get('image_id') for a in anns if a.get('id') not in reasons}
    skipped, background = {}, []
    for img in coco.get('images', []):
        if filter_empty_gt and img['id'] not in in_cat:
            skipped[img['id']] = ('no annotation of a trained category '
                                  '(filter_empty_gt)')
        elif min(img.get('width', 0), img.get('height', 0)) < min_size:
            skipped[img['id']] = f'smaller than filter_cfg.min_size={min_size}'
        elif img['id'] not in with_box:
            background.append(img['id'])
    return dict(
        reasons=reasons,
        annotations=len(anns),
        usable=len(anns) - len(reasons),
        skipped=skipped,
        background=background)


def usable_annotations_error(ann_file: str, summary: dict,
                             min_usable_fraction: float = 0.0
                             ) -> Optional[str]:
    """Why training on ``ann_file`` must stop, or None.

    Training stops when no annotation is usable, or when fewer than
    ``min_usable_fraction`` of them are (``DataSummaryHook``'s argument).
    """
    total, usable = summary['annotations'], summary['usable']
    if total == 0 or (usable > 0 and usable >= min_usable_fraction * total):
        return None
    counts: Dict[str, int] = {}
    for reason in summary['reasons'].values():
        counts[reason] = counts.get(reason, 0) + 1
    detail = ', '.join(f'{n} {r}' for r, n in counts.items())
    limit = (f', fewer than min_usable_fraction={min_usable_fraction:g}'
             if usable else '')
    return (f'{ann_file}: {usable} of {total} annotations are usable{limit} '
            f'(mmdet drops {detail}); training would learn background only. '
            'Fix the boxes (`python tools/check_dataset.py CONFIG` lists '
            'them) or point the config at the right annotation file')
