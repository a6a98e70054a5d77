# Copyright (c) um-mae contributors. All rights reserved.
"""``reconstruct`` of every pre-training algorithm vs its own loss path.

The figure tool draws what ``reconstruct`` returns; it must be what the
algorithm predicts in :meth:`loss` on the same batch and seed (the
prediction the training loss reads).
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

from um_mae.models.algorithms.reconstruction import unpatchify_prediction
from um_mae.toolkit.pretrain_inputs import (build_pretrain_model,
                                            build_synthetic_batch,
                                            load_pretrain_config, quiet_logger)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
PRETRAIN = osp.join(REPO, 'configs', 'pretrain')
CONFIGS = [
    'ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py',
    'ummae/ummae_swin-demo_1xb8-10e_demo-128px.py',
    'ummae/ummae_vit-tiny-p16_1xb8-10e_demo-128px.py',
    'simmim/simmim_pvt-demo_1xb8-10e_demo-128px.py',
    'mae/mae_vit-tiny-p16_1xb8-10e_demo-128px.py',
]


def test_unpatchify_prediction_undoes_norm_pix():
    head = MODELS.build(
        dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=16,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))
    x = torch.randn(2, 3, 32, 32) * 3 + 1
    perfect = head.construct_target(x)
    torch.testing.assert_close(unpatchify_prediction(head, perfect, x), x)


def _loss_path(model, inputs, data_samples, seed):
    """The neck's output and the backbone's output in ``model.loss``."""
    seen = {}
    hooks = [
        model.neck.register_forward_hook(
            lambda m, args, out: seen.setdefault('pred', out)),
        model.backbone.register_forward_hook(
            lambda m, args, out: seen.setdefault('backbone', out))
    ]
    torch.manual_seed(seed)
    with torch.no_grad():
        model.loss(inputs, data_samples)
    for hook in hooks:
        hook.remove()
    return seen['pred'], seen['backbone']


@pytest.mark.parametrize('config', CONFIGS)
def test_reconstruct_is_the_loss_path_prediction(config):
    quiet_logger()
    cfg = load_pretrain_config(osp.join(PRETRAIN, config), 64)
    torch.manual_seed(0)
    model = build_pretrain_model(cfg)
    model.init_weights()
    model.eval()
    data = model.data_preprocessor(build_synthetic_batch(cfg, 2, 64, seed=1))
    inputs, data_samples = data['inputs'], data['data_samples']
    torch.manual_seed(3)  # MAE draws its mask in the backbone
    recon, mask, secondary = model.reconstruct(inputs, data_samples)
    pred, backbone_out = _loss_path(model, inputs, data_samples, seed=3)

    assert recon.shape == inputs.shape and not recon.requires_grad
    assert mask.dtype == torch.bool and mask.shape == (2, 4, 4)
    name = type(model).__name__
    if name in ('UMMAEViT', 'ReconstructingMAE'):
        # MAE decoders predict every token; the mask is the backbone's
        torch.testing.assert_close(
            recon, unpatchify_prediction(model.head, pred, inputs))
        assert torch.equal(mask.flatten(1), backbone_out[1].bool())
    elif name == 'UMMAE':
        # the loss path skips the visible rows: compare the dropped tokens
        expected = unpatchify_prediction(model.head, pred, inputs)
        dropped = mask.repeat_interleave(16, 1).repeat_interleave(16, 2)
        dropped = dropped[:, None].expand_as(recon)
        torch.testing.assert_close(recon[dropped], expected[dropped])
    else:  # SimMIM predicts pixels
        torch.testing.assert_close(recon, pred)
    if name == 'ReconstructingMAE':
        assert secondary is None
        assert mask.sum().item() == 2 * 12  # mmpretrain's 75 %
    else:  # the pipeline's masks
        for i, sample in enumerate(data_samples):
            assert np.array_equal(mask[i].numpy(),
                                  np.asarray(sample.mask, bool))
            if 'secondary_mask' in sample:
                assert np.array_equal(secondary[i].numpy(),
                                      np.asarray(sample.secondary_mask, bool))
            else:
                assert secondary is None
