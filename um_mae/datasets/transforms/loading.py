# Copyright (c) um-mae contributors. All rights reserved.
"""Image loading with a stated policy for corrupt or truncated files."""
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.fileio import get
from mmengine.logging import MMLogger
from mmpretrain.registry import TRANSFORMS

__all__ = ['CheckedLoadImageFromFile', 'CheckSegMapSize']


def _decode_16bit(img_bytes: bytes, color_type: str) -> Optional[np.ndarray]:
    """A 16-bit PNG / TIFF as 8-bit BGR (or grey); None for other files."""
    deep_formats = (b'\x89PNG', b'II*\x00', b'MM\x00*')  # PNG, TIFF
    if (color_type not in ('color', 'grayscale')
            or not img_bytes.startswith(deep_formats)):
        return None
    img = cv2.imdecode(
        np.frombuffer(img_bytes, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16:
        return None
    img = np.round(img / 257.).astype(np.uint8)  # 65535 -> 255
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]  # drop alpha
    if color_type == 'grayscale':
        return img if img.ndim == 2 else cv2.cvtColor(img,
                                                      cv2.COLOR_BGR2GRAY)
    return img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """Load an image; decide what a corrupt or truncated file does.

    ``mmcv``'s loader either raises deep inside a worker or, with OpenCV,
    silently decodes a truncated JPEG with a grey bottom. This one decodes
    with Pillow, which refuses truncated files, and then applies ``on_error``:

    * ``'raise'`` (default): stop with a ``ValueError`` naming the file and
      the fix;
    * ``'skip'``: log a warning naming the file and return ``None``, which
      makes mmengine's dataset draw another sample (training only; in test
      mode mmengine refuses ``None`` and the run stops).

    16-bit images (PNG / TIFF) are scaled to 8 bits (``value / 257``);
    Pillow alone would clip grey 16-bit images to white.

    Args:
        on_error (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        **kwargs: Arguments of :class:`mmcv.transforms.LoadImageFromFile`
            (``imdecode_backend`` defaults to ``'pillow'`` here).
    """

    def __init__(self, on_error: str = 'raise', **kwargs) -> None:
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got "
                             f'{on_error!r}')
        kwargs.setdefault('imdecode_backend', 'pillow')
        super().__init__(**kwargs)
        self.on_error = on_error

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            img_bytes = get(filename, backend_args=self.backend_args)
            img = _decode_16bit(img_bytes, self.color_type)
            if img is None:
                img = mmcv.imfrombytes(
                    img_bytes,
                    flag=self.color_type,
                    backend=self.imdecode_backend)
            if img is None or img.size == 0:
                raise ValueError('decoder returned no pixels')
        except Exception as e:  # corrupt, truncated, unreadable
            if self.on_error == 'skip':
                MMLogger.get_current_instance().warning(
                    f'skipping unreadable image {filename}: {e}')
                return None
            raise ValueError(
                f'cannot read image {filename} ({type(e).__name__}: {e}); '
                'delete or replace the file, or skip unreadable images with '
                "dict(type='CheckedLoadImageFromFile', on_error='skip')"
            ) from e
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(on_error={self.on_error!r}, '
                f'color_type={self.color_type!r}, '
                f'imdecode_backend={self.imdecode_backend!r})')


@TRANSFORMS.register_module()
class CheckSegMapSize(BaseTransform):
    """Refuse a sample whose label map is not the size of its image.

    Placed right after mmseg's ``LoadAnnotations`` in a segmentation
    pipeline (before any resize or crop), so a wrong label map stops the run
    when its sample is read, naming both files, instead of training in
    silence and failing at the first validation. Required keys: ``img``,
    ``gt_seg_map``; nothing is modified.
    """

    def transform(self, results: dict) -> dict:
        img, seg = results.get('img'), results.get('gt_seg_map')
        if img is None or seg is None:
            raise ValueError(
                'CheckSegMapSize needs the image and the label map: place it '
                "after LoadImageFromFile and LoadAnnotations")
        if tuple(img.shape[:2]) != tuple(seg.shape[:2]):
            raise ValueError(
                f'segmentation label map {results.get("seg_map_path")} is '
                f'{seg.shape[0]} x {seg.shape[1]} but its image '
                f'{results.get("img_path")} is {img.shape[0]} x '
                f'{img.shape[1]}: label maps must have the size of their '
                'image; `python tools/check_dataset.py CONFIG` lists them')
        return results
