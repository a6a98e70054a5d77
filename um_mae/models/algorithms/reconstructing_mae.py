# Copyright (c) um-mae contributors. All rights reserved.
"""The MAE baseline (He et al., "Masked Autoencoders Are Scalable Vision
Learners", 2022) with a ``reconstruct`` method for the figures."""
from typing import List, Optional, Tuple

import torch
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .reconstruction import token_grid, unpatchify_prediction

__all__ = ['ReconstructingMAE']


@MODELS.register_module()
class ReconstructingMAE(MAE):
    """mmpretrain's ``MAE`` (same training) plus :meth:`reconstruct`."""

    @torch.no_grad()
    def reconstruct(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DataSample]] = None
    ) -> Tuple[Tensor, Tensor, None]:
        """Reconstruct images as :meth:`loss` predicts them.

        The backbone draws its random mask from torch's generator (seed it
        for a repeatable mask).

        Args:
            inputs (Tensor): Preprocessed images ``(N, 3, H, W)``.
            data_samples (List[DataSample], optional): Unused (MAE draws
                its mask itself). Defaults to None.

        Returns:
            tuple: ``(images, mask, None)``: the reconstructions
            ``(N, 3, H, W)`` in the space of ``inputs`` (a ``norm_pix``
            prediction un-normalised with each original patch's mean and
            variance), and the bool ``(N, h, w)`` token mask, True =
            dropped.
        """
        latent, mask, ids_restore = self.backbone(inputs)
        pred = self.neck(latent, ids_restore)  # (N, L, p*p*3), raster order
        return unpatchify_prediction(self.head, pred,
                                     inputs), token_grid(mask), None
