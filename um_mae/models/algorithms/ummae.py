# Copyright (c) um-mae contributors. All rights reserved.
"""UM-MAE: MAE pre-training of pyramid ViTs with Uniform Masking.

Li et al., "Uniform Masking: Enabling MAE Pre-training for Pyramid-based
Vision Transformers with Locality", 2022.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .eager_update import EagerUpdateMixin
from .pipeline_masks import pipeline_masks
from .reconstruction import unpatchify_prediction

__all__ = ['UMMAE']


@MODELS.register_module()
class UMMAE(EagerUpdateMixin, BaseSelfSupervisor):
    """UM-MAE pre-training: uniform masking, compact encoder, MAE decoder.

    The masks come from the data pipeline (``UniformMaskGenerator``): the
    primary ``mask`` selects the tokens the encoder never sees and the loss
    is computed on; the optional ``secondary_mask`` additionally marks kept
    tokens that the encoder replaces by its ``vis_mask_token``.

    Expected components: a backbone with
    ``forward(img, mask, secondary_mask) -> tuple of compact maps`` (e.g.
    ``UMPVT(with_vis_mask_token=True)``), a neck with
    ``forward(last_map, mask, predict_visible) -> (N, L, p*p*3)`` in raster
    order (e.g. ``MAEPyramidDecoder``) and a head with
    ``loss(pred, img, mask)`` (e.g. mmpretrain's ``MAEPretrainHead``).

    Under ``compile=True`` the forward and loss are one graph and the
    parameter update runs eagerly (:class:`EagerUpdateMixin`).
    """

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor]:
        """Features of full (unmasked) images from the backbone."""
        return self.backbone(inputs)

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
        feats = self.backbone(inputs, mask, secondary_mask)
        # (N, L, p*p*3) in raster order; the rows of visible tokens, which
        # the loss does not read, are not computed (zeros)
        pred = self.neck(feats[-1], mask, predict_visible=False)
        loss = self.head.loss(pred, inputs, mask.flatten(1))
        return dict(loss=loss)

    @torch.no_grad()
    def reconstruct(
        self, inputs: Tensor, data_samples: List[DataSample]
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Reconstruct images as :meth:`loss` predicts them.

        Unlike the loss path, the visible tokens are predicted too.

        Args:
            inputs (Tensor): Preprocessed images ``(N, 3, H, W)``.
            data_samples (List[DataSample]): Carry ``mask`` and optionally
                ``secondary_mask``, bool ``(h, w)`` each.

        Returns:
            tuple: ``(images, mask, secondary_mask)``: the reconstructions
            ``(N, 3, H, W)`` in the space of ``inputs`` (a ``norm_pix``
            prediction un-normalised with each original patch's mean and
            variance), the bool ``(N, h, w)`` primary mask (True = dropped)
            and the secondary mask or None.
        """
        mask, secondary_mask = pipeline_masks(data_samples, inputs.device,
                                              type(self).__name__)
        feats = self.backbone(inputs, mask, secondary_mask)
        pred = self.neck(feats[-1], mask)  # (N, L, p*p*3), raster order
        return unpatchify_prediction(self.head, pred,
                                     inputs), mask, secondary_mask
