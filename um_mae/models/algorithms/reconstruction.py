# Copyright (c) um-mae contributors. All rights reserved.
"""What the algorithms' ``reconstruct`` methods share.

Each pre-training algorithm (``UMMAE``, ``UMMAEViT``, ``ReconstructingMAE``,
``CompilableSimMIM``) has ``reconstruct(inputs, data_samples)`` returning
``(images, mask, secondary_mask)``: the reconstructions in the space of
``inputs``, the bool ``(N, h, w)`` token mask (True = dropped) and the
secondary mask or None. The figures of Li et al., "Uniform Masking:
Enabling MAE Pre-training for Pyramid-based Vision Transformers with
Locality", 2022 (Fig. 8) are drawn from them.
"""
from torch import Tensor

__all__ = ['unpatchify_prediction', 'token_grid']


def unpatchify_prediction(head, pred: Tensor, inputs: Tensor) -> Tensor:
    """Token predictions ``(N, L, p*p*3)`` -> images ``(N, 3, H, W)``.

    A ``norm_pix`` head (mmpretrain's ``MAEPretrainHead``) predicts every
    patch normalised by its own mean and variance; they are taken from the
    original ``inputs``, as MAE's visualisation does.

    Args:
        head: The algorithm's head (``patchify``/``unpatchify``).
        pred (Tensor): ``(N, L, p*p*3)`` in raster order.
        inputs (Tensor): Preprocessed originals ``(N, 3, H, W)``.

    Returns:
        Tensor: ``(N, 3, H, W)`` in the space of ``inputs``.
    """
    if getattr(head, 'norm_pix', False):
        target = head.patchify(inputs)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    return head.unpatchify(pred)


def token_grid(mask: Tensor) -> Tensor:
    """A flat token mask ``(N, L)`` of a square grid -> bool ``(N, h, w)``.

    Args:
        mask (Tensor): ``(N, L)`` in raster order, ``L`` a square (a ViT
            backbone's mask, e.g. ``MAEViT``'s).

    Returns:
        Tensor: Bool ``(N, sqrt(L), sqrt(L))``.
    """
    side = int(mask.shape[1]**.5)
    return mask.reshape(-1, side, side).bool()
