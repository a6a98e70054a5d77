# Copyright (c) um-mae contributors. All rights reserved.
"""The COCO annotations mmdet drops without a word, and why.

Used by the training log (:class:`~um_mae.engine.DataSummaryHook`) and by
``tools/check_dataset.py`` (:mod:`um_mae.toolkit.checks`).
"""
import math
from typing import Dict, Optional, Sequence

__all__ = ['coco_drop_reasons']


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
