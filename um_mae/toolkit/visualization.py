# Copyright (c) um-mae contributors. All rights reserved.
"""Pictures of masks, reconstructions and feature pyramids.

Reproduces the kind of figures of Li et al., "Uniform Masking: Enabling MAE
Pre-training for Pyramid-based Vision Transformers with Locality", 2022:
the same image under the RS / GS / US / UM sampling strategies (Fig. 4),
and original / masked input / reconstruction / reconstruction with the
visible patches pasted back (Fig. 8), for UM-MAE, SimMIM and MAE models
(whose ``reconstruct`` methods give the images and masks);
and the feature maps of every pyramid level of a detector or segmentor
(do the object regions light up at every level?).
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

__all__ = [
    'DROPPED_COLOR', 'SECONDARY_COLOR', 'paint_masks', 'image_grid',
    'sample_strategy_masks', 'to_uint8_rgb', 'load_square_rgb',
    'feature_energy', 'heatmap_overlay', 'pyramid_maps'
]

#: fill of the tokens the encoder never sees (primary mask)
DROPPED_COLOR = (127, 127, 127)
#: tint of the kept tokens replaced by the learnable token (secondary mask)
SECONDARY_COLOR = (40, 110, 255)


def _upsample(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Token mask (h, w) -> pixel mask (H, W)."""
    from um_mae.models.utils import token_to_patch_mask
    return token_to_patch_mask(torch.from_numpy(mask), size).numpy()


def paint_masks(img: np.ndarray,
                mask: Optional[np.ndarray],
                secondary_mask: Optional[np.ndarray] = None,
                secondary_alpha: float = 0.6) -> np.ndarray:
    """Show what the encoder sees: dropped tokens grey, replaced ones tinted.

    Args:
        img (np.ndarray): uint8 RGB ``(H, W, 3)``.
        mask (np.ndarray, optional): Bool ``(h, w)`` token mask, True =
            dropped; painted :data:`DROPPED_COLOR`. None paints nothing.
        secondary_mask (np.ndarray, optional): Bool ``(h, w)``, superset of
            ``mask``; tokens in it but not in ``mask`` are blended with
            :data:`SECONDARY_COLOR`. Defaults to None.
        secondary_alpha (float): Weight of the tint. Defaults to 0.6.

    Returns:
        np.ndarray: uint8 RGB ``(H, W, 3)``.
    """
    out = img.astype(np.float32).copy()
    size = img.shape[:2]
    if secondary_mask is not None:
        extra = np.asarray(secondary_mask, bool)
        if mask is not None:
            extra = extra & ~np.asarray(mask, bool)
        extra = _upsample(extra, size)
        out[extra] = ((1 - secondary_alpha) * out[extra] +
                      secondary_alpha * np.array(SECONDARY_COLOR))
    if mask is not None:
        out[_upsample(np.asarray(mask, bool), size)] = DROPPED_COLOR
    return out.round().clip(0, 255).astype(np.uint8)


def image_grid(rows: Sequence[Sequence[np.ndarray]],
               col_labels: Optional[Sequence[str]] = None,
               row_labels: Optional[Sequence[str]] = None,
               pad: int = 4,
               label_height: int = 14,
               label_width: int = 0) -> Image.Image:
    """Tile equally sized RGB images with optional text labels.

    The result is ``len(cols) * (W + pad) + pad + label_width`` wide and
    ``len(rows) * (H + pad) + pad + label_height`` high (``label_height``
    only with ``col_labels``).

    Args:
        rows (Sequence[Sequence[np.ndarray]]): uint8 ``(H, W, 3)`` images.
        col_labels (Sequence[str], optional): Text above each column.
            Defaults to None.
        row_labels (Sequence[str], optional): Text left of each row (needs
            ``label_width``). Defaults to None.
        pad (int): Gap between images, pixels. Defaults to 4.
        label_height (int): Height of the column-label band. Defaults to 14.
        label_width (int): Width of the row-label band. Defaults to 0.

    Returns:
        PIL.Image.Image: The grid.
    """
    H, W = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    top = label_height if col_labels else 0
    width = ncol * (W + pad) + pad + label_width
    height = len(rows) * (H + pad) + pad + top
    canvas = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(col_labels or []):
        draw.text((label_width + pad + j * (W + pad), 1), text, fill=(0, 0, 0))
    for i, row in enumerate(rows):
        y = top + pad + i * (H + pad)
        if row_labels:
            draw.text((2, y + H // 2 - 5), row_labels[i], fill=(0, 0, 0))
        for j, img in enumerate(row):
            if img.shape[:2] != (H, W):
                raise ValueError(f'image {i},{j} is {img.shape[:2]}, the '
                                 f'first is {(H, W)}; resize them alike')
            canvas.paste(
                Image.fromarray(img), (label_width + pad + j * (W + pad), y))
    return canvas


def sample_strategy_masks(
        input_size: int,
        strategies: Sequence[str] = ('RS', 'GS', 'US', 'UM'),
        seed: int = 0,
        token_size: int = 16) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Masks of each sampling strategy from ``UniformMaskGenerator``.

    Args:
        input_size (int): Image side, a multiple of ``2 * token_size``.
        strategies (Sequence[str]): Strategy names.
            Defaults to ``('RS', 'GS', 'US', 'UM')``.
        seed (int): Seed of numpy's generator (restored afterwards).
            Defaults to 0.
        token_size (int): Token side in pixels. Defaults to 16.

    Returns:
        dict: ``strategy -> (mask, secondary_mask or None)``.
    """
    from um_mae.datasets.transforms import UniformMaskGenerator
    state = np.random.get_state()
    out = {}
    try:
        for strategy in strategies:
            np.random.seed(seed)
            gen = UniformMaskGenerator(
                strategy=strategy,
                input_size=input_size,
                token_size=token_size)
            res = gen(dict())
            secondary = res.get('secondary_mask')
            out[strategy] = (res['mask'], None if secondary is None else
                             np.asarray(secondary))
    finally:
        np.random.set_state(state)
    return out


def load_square_rgb(path: Optional[str], size: int) -> np.ndarray:
    """An RGB uint8 image, centre-cropped to a square and resized.

    Args:
        path (str, optional): Image file; None takes scikit-image's
            astronaut photo.
        size (int): Output side in pixels.

    Returns:
        np.ndarray: ``(size, size, 3)``.
    """
    if path is None:
        from skimage import data
        img = Image.fromarray(data.astronaut())
    else:
        if not os.path.isfile(path):
            raise ValueError(f'image {path!r} does not exist')
        try:
            with Image.open(path) as f:
                img = f.convert('RGB')
        except Exception as e:  # not an image, truncated, unsupported
            raise ValueError(f'cannot read image {path!r} ({e}); pass a '
                             'JPEG or PNG file') from e
    side = min(img.size)
    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return np.asarray(img.resize((size, size), Image.BICUBIC))


def to_uint8_rgb(x: Tensor, mean: Tensor, std: Tensor) -> List[np.ndarray]:
    """Normalised ``(N, 3, H, W)`` -> list of uint8 ``(H, W, 3)`` images."""
    x = x.float() * std.view(1, -1, 1, 1).cpu() + mean.view(1, -1, 1, 1).cpu()
    x = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return list(x.numpy())


def feature_energy(feature: Tensor) -> np.ndarray:
    """Where a ``(C, h, w)`` map is active: its L2 norm over channels.

    Scaled to [0, 1] per map between its 1st and 99th percentile, so that
    levels of different magnitude can be compared by their pattern.

    Args:
        feature (Tensor): One image's map ``(C, h, w)``.

    Returns:
        np.ndarray: float ``(h, w)`` in [0, 1].
    """
    energy = feature.detach().float().norm(dim=0).cpu().numpy()
    low, high = np.percentile(energy, [1, 99])
    return np.clip((energy - low) / max(high - low, 1e-12), 0, 1)


def heatmap_overlay(energy: np.ndarray,
                    image: np.ndarray,
                    alpha: float = 0.6,
                    cmap: str = 'inferno') -> np.ndarray:
    """Blend a [0, 1] map, stretched to the image, over it.

    Args:
        energy (np.ndarray): ``(h, w)`` in [0, 1]; each cell is shown as
            the block of image pixels it covers (nearest neighbour).
        image (np.ndarray): uint8 ``(H, W, 3)``.
        alpha (float): Weight of the heat map. Defaults to 0.6.
        cmap (str): A matplotlib colour map. Defaults to ``'inferno'``.

    Returns:
        np.ndarray: uint8 ``(H, W, 3)``.
    """
    from matplotlib import colormaps
    H, W = image.shape[:2]
    colours = colormaps[cmap](energy)[..., :3] * 255  # (h, w, 3)
    heat = np.asarray(
        Image.fromarray(colours.astype(np.uint8)).resize((W, H),
                                                         Image.NEAREST))
    out = alpha * heat + (1 - alpha) * image
    return out.round().astype(np.uint8)


@torch.no_grad()
def pyramid_maps(model, inputs: Tensor) -> List[Tuple[str, List[Tensor]]]:
    """The maps of a detector's / segmentor's backbone and neck modules.

    Runs ``model.extract_feat(inputs)`` (mmdet and mmseg models) and
    records the output of the backbone and of every neck module (a neck
    list is built as ``nn.Sequential``: one entry per module).

    Args:
        model: The model, in eval mode.
        inputs (Tensor): Preprocessed images ``(N, 3, H, W)``.

    Returns:
        list[tuple[str, list[Tensor]]]: ``(name, maps)`` in the order they
        are computed, e.g. ``('backbone', ...)``, ``('neck.0
        ViTSimplePyramid', ...)``, ``('neck.1 FPN', ...)``; each map
        ``(N, C, h, w)``.
    """
    neck = getattr(model, 'neck', None)
    if not hasattr(model, 'extract_feat') or getattr(model, 'backbone',
                                                     None) is None:
        raise TypeError(f'{type(model).__name__} has no backbone / '
                        'extract_feat; use a detection or segmentation '
                        'config')
    if neck is None:
        parts = [('backbone', model.backbone)]
    elif isinstance(neck, torch.nn.Sequential):
        parts = [('backbone', model.backbone)] + [
            (f'neck.{i} {type(m).__name__}', m) for i, m in enumerate(neck)
        ]
    else:
        parts = [('backbone', model.backbone),
                 (f'neck {type(neck).__name__}', neck)]
    recorded = {}
    handles = [
        module.register_forward_hook(
            lambda m, args, out, name=name: recorded.__setitem__(name, out))
        for name, module in parts
    ]
    try:
        model.extract_feat(inputs)
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, _ in parts:
        maps = recorded[name]
        rows.append(
            (name, list(maps) if isinstance(maps, (list, tuple)) else [maps]))
    return rows
