# Copyright (c) um-mae contributors. All rights reserved.
"""UM-MAE on a plain ViT: MAE with masks from the data pipeline.

The pilot of Li et al., "Uniform Masking: Enabling MAE Pre-training for
Pyramid-based Vision Transformers with Locality", 2022.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .pipeline_masks import pipeline_masks
from .reconstruction import token_grid, unpatchify_prediction

__all__ = ['UMMAEViT']


@MODELS.register_module()
class UMMAEViT(MAE):
    """mmpretrain's ``MAE`` whose masks come from the data pipeline.

    ``UniformMaskGenerator`` writes ``mask`` (and ``secondary_mask``) into
    the data samples; they go to the backbone (``UMViT``), whose
    ``(latent, mask, ids_restore)`` output feeds mmpretrain's
    ``MAEPretrainDecoder`` and ``MAEPretrainHead`` as in MAE.
    """

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """Reconstruction loss on the primary-masked tokens.

        Args:
            inputs (Tensor): Images ``(N, C, H, W)``.
            data_samples (List[DataSample]): Carry ``mask`` and optionally
                ``secondary_mask``, bool ``(h, w)`` each.

        Returns:
            dict[str, Tensor]: ``{'loss': ...}``.
        """
        mask, secondary_mask = pipeline_masks(data_samples, inputs.device,
                                              type(self).__name__)
        latent, mask, ids_restore = self.backbone(inputs, mask, secondary_mask)
        pred = self.neck(latent, ids_restore)  # (N, L, p*p*3), raster order
        loss = self.head.loss(pred, inputs, mask)
        return dict(loss=loss)

    @torch.no_grad()
    def reconstruct(
        self, inputs: Tensor, data_samples: List[DataSample]
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Reconstruct images as :meth:`loss` predicts them.

        Arguments and return as :meth:`UMMAE.reconstruct`; the mask
        returned is the one the backbone applied.
        """
        mask, secondary_mask = pipeline_masks(data_samples, inputs.device,
                                              type(self).__name__)
        latent, mask, ids_restore = self.backbone(inputs, mask, secondary_mask)
        pred = self.neck(latent, ids_restore)  # (N, L, p*p*3), raster order
        return unpatchify_prediction(self.head, pred,
                                     inputs), token_grid(mask), secondary_mask
