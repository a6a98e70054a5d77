# Copyright (c) um-mae contributors. All rights reserved.
"""Small deterministic datasets for demos and tests (nothing downloaded).

* :func:`make_pretrain_images`: crops of the real photos that scikit-image
  ships inside its wheel, as a flat image folder (mmpretrain
  ``CustomDataset(with_label=False)``).
* :func:`make_coco_shapes`: images of simple shapes with boxes and polygon
  masks in COCO format (mmdet ``CocoDataset``).
* :func:`make_seg_shapes`: the same kind of images with per-pixel labels in
  mmseg's ``img_dir/ann_dir`` layout.

The public datasets' own folder layouts, with the same content, for trying
a shipped recipe end to end (``python tools/make_demo_data.py imagenet``):

* :func:`make_imagenet_layout`: ImageNet-1k (``train/<wnid>/``, ``val/``,
  ``meta/{train,val}.txt``);
* :func:`make_coco_layout`: COCO 2017 (``{train,val}2017/``,
  ``annotations/instances_{train,val}2017.json`` with the 80 COCO
  categories and their ids, optionally COCO-stuff ``stuffthingmaps/``);
* :func:`make_ade20k_layout`: ADE20K (``images/{training,validation}``,
  ``annotations/{training,validation}``, label 0 = other).
"""
import json
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'SHAPE_CLASSES', 'COCO_CATEGORY_IDS', 'make_pretrain_images',
    'make_coco_shapes', 'make_seg_shapes', 'make_imagenet_layout',
    'make_coco_layout', 'make_ade20k_layout'
]

# Photos bundled in the scikit-image wheel (no pooch download needed).
_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg',
           'motorcycle_left.png', 'motorcycle_right.png',
           'hubble_deep_field.jpg', 'ihc.png', 'retina.jpg', 'brick.png',
           'grass.png', 'gravel.png', 'camera.png', 'coins.png', 'moon.png',
           'page.png', 'cell.png', 'color.png')

SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle')
#: ids of the 80 COCO categories in mmdet's class order (1 - 90, with gaps)
COCO_CATEGORY_IDS = (
    list(range(1, 12)) + list(range(13, 26)) + [27, 28] +
    list(range(31, 45)) + list(range(46, 66)) + [67, 70] +
    list(range(72, 83)) + list(range(84, 91)))
# BGR colours of the three classes (distinct hues, jittered per instance).
_SHAPE_COLORS = ((40, 40, 220), (40, 200, 40), (220, 120, 30))


def _skimage_photos() -> List[np.ndarray]:
    try:
        import skimage
    except ImportError as e:  # pragma: no cover - part of the install
        raise ImportError(
            'the demo images are cut from scikit-image\'s bundled photos; '
            'install it with `pip install scikit-image`') from e
    data_dir = osp.join(osp.dirname(skimage.__file__), 'data')
    photos = []
    for name in _PHOTOS:
        img = cv2.imread(osp.join(data_dir, name), cv2.IMREAD_COLOR)
        if img is not None:
            photos.append(img)
    if not photos:
        raise FileNotFoundError(
            f'no bundled photo found in {data_dir}; reinstall scikit-image')
    return photos


def make_pretrain_images(out_dir: str,
                         num_images: int = 64,
                         size: int = 256,
                         seed: int = 0) -> List[str]:
    """Cut random square crops of real photos into a flat image folder.

    Args:
        out_dir (str): Folder to write ``NNNN.jpg`` files to.
        num_images (int): Number of images. Defaults to 64.
        size (int): Side of the saved images in pixels. Defaults to 256.
        seed (int): Seed of the crop positions. Defaults to 0.

    Returns:
        list[str]: Paths of the written images.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, crop in enumerate(_photo_crops(num_images, size, seed)):
        path = osp.join(out_dir, f'{i:04d}.jpg')
        cv2.imwrite(path, crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def _photo_crops(num: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """``num`` random square crops of the photos, ``size`` px, BGR."""
    rng = np.random.default_rng(seed)
    photos = _skimage_photos()
    for i in range(num):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(min(h, w) * rng.uniform(0.5, 1.0))
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        crop = cv2.resize(img[y:y + side, x:x + side], (size, size),
                          interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        yield np.ascontiguousarray(crop)


def _background(rng: np.random.Generator, size: Tuple[int, int]):
    """Smooth low-contrast noise so that shapes are not on a flat colour."""
    h, w = size
    coarse = rng.integers(70, 170, size=(4, 4, 3)).astype(np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=(h, w, 3))
    return np.clip(img + noise, 0, 255).astype(np.uint8)


#: shape sides (px) whose areas fall in COCO's large, medium and small
#: ranges (area >= 96**2, 32**2..96**2, < 32**2) for every shape drawn: a
#: triangle covers s**2 / 2, a rectangle 2 s**2 / 3, an ellipse about s**2/2
COCO_AREA_SIDES = ((150, 200), (56, 100), (16, 36))


def _draw_shapes(
    rng: np.random.Generator,
    size: Tuple[int, int],
    max_shapes: int,
    sides: Optional[Sequence[Tuple[int, int]]] = None
) -> Tuple[np.ndarray, List[Dict]]:
    """One image and its instances (class id, binary mask, polygon).

    ``sides``: one shape per ``(low, high)`` range of its side, in this
    order (instead of 1..``max_shapes`` shapes of random sides).
    """
    h, w = size
    img = _background(rng, size)
    occupied = np.zeros((h, w), dtype=bool)
    instances = []
    if sides is None:
        num = int(rng.integers(1, max_shapes + 1))
        sides = [(min(h, w) // 6, int(min(h, w) // 2.5))] * num
    for low, high in sides:
        for _attempt in range(10):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            s = int(rng.integers(low, high))
            cx = int(rng.integers(s // 2 + 1, w - s // 2 - 1))
            cy = int(rng.integers(s // 2 + 1, h - s // 2 - 1))
            mask = np.zeros((h, w), dtype=np.uint8)
            if label == 0:
                cv2.rectangle(mask, (cx - s // 2, cy - s // 3),
                              (cx + s // 2, cy + s // 3), 1, -1)
            elif label == 1:
                cv2.ellipse(mask, (cx, cy), (s // 2, s // 3),
                            float(rng.uniform(0, 180)), 0, 360, 1, -1)
            else:
                pts = np.array([[cx, cy - s // 2], [cx - s // 2, cy + s // 2],
                                [cx + s // 2, cy + s // 2]], np.int32)
                cv2.fillPoly(mask, [pts], 1)
            m = mask.astype(bool)
            if m.sum() < 20 or (m & occupied).any():
                continue
            occupied |= m
            color = np.clip(
                np.array(_SHAPE_COLORS[label]) + rng.integers(-25, 26, 3), 0,
                255)
            img[m] = color
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            poly = max(contours, key=cv2.contourArea).reshape(-1)
            if len(poly) < 6:
                continue
            instances.append(dict(label=label, mask=m, polygon=poly))
            break
    return img, instances


def make_coco_shapes(out_dir: str,
                     num_train: int = 240,
                     num_val: int = 60,
                     size: Tuple[int, int] = (128, 128),
                     max_shapes: int = 3,
                     seed: int = 0) -> Dict[str, str]:
    """Write a COCO-format detection / instance segmentation dataset.

    Layout: ``{out_dir}/{train,val}/*.jpg`` and
    ``{out_dir}/annotations/instances_{train,val}.json`` with classes
    :data:`SHAPE_CLASSES`.

    Args:
        out_dir (str): Dataset root.
        num_train (int): Training images. Defaults to 240.
        num_val (int): Validation images. Defaults to 60.
        size (tuple[int, int]): Image (height, width). Defaults to
            (128, 128).
        max_shapes (int): Most shapes per image. Defaults to 3.
        seed (int): Seed. Defaults to 0.

    Returns:
        dict: Paths of the two annotation files.
    """
    rng = np.random.default_rng(seed)
    categories = [dict(id=k + 1, name=n) for k, n in enumerate(SHAPE_CLASSES)]
    return {
        split: _write_coco_split(out_dir, split, f'instances_{split}.json',
                                 num, rng, size, max_shapes, categories)
        for split, num in (('train', num_train), ('val', num_val))
    }


def _write_coco_split(out_dir: str,
                      img_folder: str,
                      ann_name: str,
                      num: int,
                      rng: np.random.Generator,
                      size: Tuple[int, int],
                      max_shapes: int,
                      categories: List[dict],
                      stuff_folder: Optional[str] = None,
                      coco_names: bool = False,
                      sides: Optional[Sequence[Tuple[int, int]]] = None
                      ) -> str:
    """Draw ``num`` shape images into ``img_folder`` and write their COCO
    annotation file; shape class k is ``categories[k]``. With
    ``stuff_folder``, also COCO-stuff style label maps (category id - 1 on
    the shapes, 255 elsewhere). ``coco_names``: COCO's 12-digit file names
    and ids from 1 (else ``00000.jpg`` and ids from 0, the demo's).
    ``sides``: see :func:`_draw_shapes`."""
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    os.makedirs(osp.join(out_dir, img_folder), exist_ok=True)
    if stuff_folder:
        os.makedirs(osp.join(out_dir, stuff_folder), exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, instances = _draw_shapes(rng, size, max_shapes, sides)
        img_id = i + 1 if coco_names else i
        name = f'{img_id:012d}.jpg' if coco_names else f'{i:05d}.jpg'
        cv2.imwrite(osp.join(out_dir, img_folder, name), img)
        images.append(
            dict(id=img_id, file_name=name, height=size[0], width=size[1]))
        stuff = np.full(size, 255, dtype=np.uint8)
        for inst in instances:
            cat_id = categories[inst['label']]['id']
            stuff[inst['mask']] = cat_id - 1
            ys, xs = np.nonzero(inst['mask'])
            x0, y0 = int(xs.min()), int(ys.min())
            bw, bh = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=cat_id,
                    bbox=[x0, y0, bw, bh],
                    area=int(inst['mask'].sum()),
                    segmentation=[inst['polygon'].tolist()],
                    iscrowd=0))
        if stuff_folder:
            cv2.imwrite(
                osp.join(out_dir, stuff_folder,
                         name.replace('.jpg', '.png')), stuff)
    path = osp.join(out_dir, 'annotations', ann_name)
    with open(path, 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations,
                categories=categories), f)
    return path


def make_seg_shapes(out_dir: str,
                    num_train: int = 160,
                    num_val: int = 40,
                    size: Tuple[int, int] = (128, 128),
                    max_shapes: int = 3,
                    seed: int = 1) -> Sequence[str]:
    """Write a semantic segmentation dataset in mmseg's layout.

    Layout: ``{out_dir}/img_dir/{train,val}/*.jpg`` and
    ``{out_dir}/ann_dir/{train,val}/*.png``; label 0 is background and
    ``k + 1`` is ``SHAPE_CLASSES[k]``.

    Args:
        out_dir (str): Dataset root.
        num_train (int): Training images. Defaults to 160.
        num_val (int): Validation images. Defaults to 40.
        size (tuple[int, int]): Image (height, width). Defaults to
            (128, 128).
        max_shapes (int): Most shapes per image. Defaults to 3.
        seed (int): Seed. Defaults to 1.

    Returns:
        list[str]: The split names written.
    """
    rng = np.random.default_rng(seed)
    for split, num in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(out_dir, 'img_dir', split)
        ann_dir = osp.join(out_dir, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            img, instances = _draw_shapes(rng, size, max_shapes)
            label = np.zeros(size, dtype=np.uint8)
            for inst in instances:
                label[inst['mask']] = inst['label'] + 1
            cv2.imwrite(osp.join(img_dir, f'{i:05d}.jpg'), img)
            cv2.imwrite(osp.join(ann_dir, f'{i:05d}.png'), label)
    return ['train', 'val']


def make_imagenet_layout(out_dir: str,
                         num_classes: int = 2,
                         images_per_class: int = 2,
                         num_val: int = 2,
                         size: int = 256,
                         seed: int = 0) -> Dict[str, str]:
    """Photo crops in ImageNet-1k's layout (mmpretrain ``ImageNet``).

    ``train/<wnid>/<wnid>_<i>.JPEG``, ``val/ILSVRC2012_val_<i>.JPEG`` and
    ``meta/train.txt`` / ``meta/val.txt`` (``path label`` per line).

    Args:
        out_dir (str): Dataset root (``data/imagenet`` in the configs).
        num_classes (int): Classes (folders). Defaults to 2.
        images_per_class (int): Training images per class. Defaults to 2.
        num_val (int): Validation images. Defaults to 2.
        size (int): Image side in pixels. Defaults to 256.
        seed (int): Seed. Defaults to 0.

    Returns:
        dict: Paths of the two annotation files.
    """
    total = num_classes * images_per_class + num_val
    crops = _photo_crops(total, size, seed)
    lines = dict(train=[], val=[])
    for c in range(num_classes):
        wnid = f'n{1440000 + c:08d}'
        os.makedirs(osp.join(out_dir, 'train', wnid), exist_ok=True)
        for i in range(images_per_class):
            rel = f'{wnid}/{wnid}_{i + 1}.JPEG'
            cv2.imwrite(osp.join(out_dir, 'train', rel), next(crops))
            lines['train'].append(f'{rel} {c}')
    os.makedirs(osp.join(out_dir, 'val'), exist_ok=True)
    for i in range(num_val):
        name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        cv2.imwrite(osp.join(out_dir, 'val', name), next(crops))
        lines['val'].append(f'{name} {i % num_classes}')
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    files = {}
    for split, rows in lines.items():
        files[split] = osp.join(out_dir, 'meta', f'{split}.txt')
        with open(files[split], 'w') as f:
            f.write('\n'.join(rows) + '\n')
    return files


def make_coco_layout(out_dir: str,
                     num_train: int = 2,
                     num_val: int = 1,
                     size: Tuple[int, int] = (256, 256),
                     max_shapes: int = 3,
                     classes: Optional[Sequence[str]] = None,
                     stuff_maps: bool = False,
                     seed: int = 0) -> Dict[str, str]:
    """Shapes in COCO 2017's layout (mmdet ``CocoDataset``).

    ``{train,val}2017/<12 digits>.jpg`` and
    ``annotations/instances_{train,val}2017.json``; with ``stuff_maps``
    also ``stuffthingmaps/{train,val}2017/*.png`` (the semantic maps of
    HTC). By default the file lists the 80 COCO categories with their real
    ids and the shapes are its first three (person, bicycle, car), as a
    real COCO folder; ``classes`` names your own categories instead (ids
    1, 2, ...; the three shapes are the first three). Every image holds
    one shape of each COCO area range (large, medium, small; the first
    ``max_shapes`` of them), so that every area-range metric has
    something to score.

    Args:
        out_dir (str): Dataset root (``data/coco`` in the configs).
        num_train (int): Training images. Defaults to 2.
        num_val (int): Validation images. Defaults to 1.
        size (tuple[int, int]): Image (height, width), at least 202 px
            each (the large shapes). Defaults to (256, 256).
        max_shapes (int): Shapes per image (1 to 3). Defaults to 3.
        classes (Sequence[str], optional): Own category names (at least 3).
            Defaults to None (COCO's 80).
        stuff_maps (bool): Write COCO-stuff label maps. Defaults to False.
        seed (int): Seed. Defaults to 0.

    Returns:
        dict: Paths of the two annotation files.
    """
    if classes is None:
        from mmdet.datasets import CocoDataset
        names = CocoDataset.METAINFO['classes']
        categories = [
            dict(id=i, name=n) for i, n in zip(COCO_CATEGORY_IDS, names)
        ]
    else:
        if len(classes) < len(SHAPE_CLASSES):
            raise ValueError(f'classes={tuple(classes)} has fewer than the '
                             f'{len(SHAPE_CLASSES)} shapes; name at least '
                             f'{len(SHAPE_CLASSES)}')
        categories = [dict(id=k + 1, name=n) for k, n in enumerate(classes)]
    rng = np.random.default_rng(seed)
    return {
        split: _write_coco_split(
            out_dir, f'{split}2017', f'instances_{split}2017.json', num, rng,
            size, max_shapes, categories,
            f'stuffthingmaps/{split}2017' if stuff_maps else None,
            coco_names=True,
            sides=COCO_AREA_SIDES[:max_shapes])
        for split, num in (('train', num_train), ('val', num_val))
    }


def make_ade20k_layout(out_dir: str,
                       num_train: int = 2,
                       num_val: int = 1,
                       size: Tuple[int, int] = (128, 128),
                       max_shapes: int = 3,
                       seed: int = 1) -> Sequence[str]:
    """Shapes in ADE20K's layout (mmseg ``ADE20KDataset``).

    ``images/{training,validation}/ADE_*.jpg`` and
    ``annotations/{training,validation}/ADE_*.png``; label 0 is "other"
    (ignored with ``reduce_zero_label``), shape k is label k + 1.

    Args:
        out_dir (str): Dataset root (``data/ade/ADEChallengeData2016`` in
            the configs).
        num_train (int): Training images. Defaults to 2.
        num_val (int): Validation images. Defaults to 1.
        size (tuple[int, int]): Image (height, width). Defaults to
            (128, 128).
        max_shapes (int): Most shapes per image. Defaults to 3.
        seed (int): Seed. Defaults to 1.

    Returns:
        list[str]: The split names written.
    """
    rng = np.random.default_rng(seed)
    for split, tag, num in (('training', 'train', num_train),
                            ('validation', 'val', num_val)):
        img_dir = osp.join(out_dir, 'images', split)
        ann_dir = osp.join(out_dir, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            img, instances = _draw_shapes(rng, size, max_shapes)
            label = np.zeros(size, dtype=np.uint8)
            for inst in instances:
                label[inst['mask']] = inst['label'] + 1
            name = f'ADE_{tag}_{i + 1:08d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img)
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label)
    return ['training', 'validation']
