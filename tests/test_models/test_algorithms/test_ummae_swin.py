# Copyright (c) um-mae contributors. All rights reserved.
"""UM-MAE and SimMIM on the Swin backbone, against the official fixtures."""
import os.path as osp

import pytest
import torch
from conftest import (SWIN_FIXTURE_ARCH, mask_data_samples,
                      simmim_reference_loss)
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.converters import convert

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SIMMIM_SWIN = osp.join(
    REPO, 'configs', 'pretrain', 'simmim',
    'simmim_swin-tiny_8xb64-accum8-amp-coslr-200e_in1k-256px.py')


def _ummae_swin(official_pos_order=False):
    # the fixture model: mae_swin.pt config['kwargs']; the Swin decoder
    # blocks use the encoder mlp_ratio (reference quirk 9)
    return MODELS.build(
        dict(
            type='UMMAE',
            backbone=dict(
                type='UMSwinTransformer',
                arch=SWIN_FIXTURE_ARCH,
                window_size=16,
                with_vis_mask_token=True),
            neck=dict(
                type='MAEPyramidDecoder',
                in_channels=96,
                img_size=256,
                patch_size=16,
                embed_dims=64,
                depth=1,
                num_heads=4,
                mlp_ratio=4,
                official_pos_order=official_pos_order),
            head=dict(
                type='MAEPretrainHead',
                norm_pix=True,
                patch_size=16,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))


def _load_official(model, state_dict):
    converted, report = convert(state_dict)
    model.load_state_dict(converted, strict=True)
    return report


def test_converter_report_swin(reference):
    ref = reference('mae_swin.pt')
    converted, report = convert({'model': ref['state_dict']})
    assert report['arch'] == 'swin' and report['kind'] == 'pretrain'
    assert report['unused'] == []
    assert converted['neck.in_norm.weight'] is ref['state_dict']['norm.weight']
    ft = reference('ft_swin.pt')
    _, report = convert(ft['state_dict'])
    assert report['kind'] == 'classifier' and report['unused'] == []
    assert report['mapped']['head.weight'] == 'head.fc.weight'
    assert report['mapped']['blocks.2.downsample.proj.weight'] == \
        'backbone.stages.1.downsample.proj.weight'


def test_latent_parity(reference):
    ref = reference('mae_swin.pt')
    model = _ummae_swin()
    _load_official(model, ref['state_dict'])
    model.double().eval()
    with torch.no_grad():
        feats = model.backbone(ref['img'].double(),
                               ref['mask'].view(2, 16, 16),
                               ref['secondary_mask'].view(2, 16, 16))
        latent = model.neck.latent(feats[-1])
    assert (latent - ref['latent']).abs().max().item() < 1e-10


@pytest.mark.parametrize('official', [False, True])
def test_loss_parity(reference, official):
    ref = reference('mae_swin.pt')
    model = _ummae_swin(official_pos_order=official)
    _load_official(model, ref['state_dict'])
    model.double().eval()
    img = ref['img'].double()
    with torch.no_grad():
        loss = model.loss(
            img,
            mask_data_samples(ref['mask'].view(-1, 16, 16),
                              ref['secondary_mask'].view(-1, 16, 16)))['loss']
    expected = ref['loss'] if official else ref['loss_pos_matched']
    assert abs(loss.item() - expected.item()) < 1e-10
    other = ref['loss_pos_matched'] if official else ref['loss']
    assert abs(loss.item() - other.item()) > 1e-6
    if official:
        with torch.no_grad():
            mask = ref['mask'].view(2, 16, 16)
            feats = model.backbone(img, mask,
                                   ref['secondary_mask'].view(2, 16, 16))
            pred = model.neck(feats[-1], mask)
        diff = (pred - ref['pred_raster'].double()).abs().max().item()
        assert diff < 1e-5, diff


def test_loss_backward_float32(reference):
    ref = reference('mae_swin.pt')
    model = _ummae_swin()
    model.init_weights()
    model.train()
    loss = model.loss(
        ref['img'].float(),
        mask_data_samples(ref['mask'].view(-1, 16, 16),
                          ref['secondary_mask'].view(-1, 16, 16)))['loss']
    loss.backward()
    grad = model.backbone.vis_mask_token.grad
    assert torch.isfinite(loss) and grad is not None and grad.abs().sum() > 0


def test_classifier_from_converted_checkpoint(reference):
    ref = reference('ft_swin.pt')
    model = ImageClassifier(
        backbone=dict(
            type='UMSwinTransformer',
            arch=SWIN_FIXTURE_ARCH,
            window_size=16,
            out_type='avg_featmap'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=96))
    _load_official(model, ref['state_dict'])
    model.double().eval()
    with torch.no_grad():
        logits = model(ref['img'].double(), mode='tensor')
    assert (logits - ref['logits']).abs().max().item() < 1e-10


def test_simmim_swin_loss():
    """The Swin-T SimMIM config (its algorithm, neck and head; a tiny Swin
    at 64 px) gives the loss of SimMIM's rule written out
    (:func:`conftest.simmim_reference_loss`). Planted bug caught: the L1
    loss's ``channel=3`` dropped from the config."""
    from um_mae.toolkit.pretrain_inputs import load_pretrain_config
    cfg = load_pretrain_config(
        SIMMIM_SWIN, 64, {
            'model.backbone.arch':
            dict(
                _delete_=True,
                embed_dims=8,
                depths=[2, 2, 2, 2],
                num_heads=[1, 2, 2, 4],
                pos_mlp_dims=8),
            'model.neck.in_channels':
            64
        })
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    img = torch.randn(2, 3, 64, 64)
    mask = torch.rand(2, 4, 4) < 0.6
    loss = model.loss(img, mask_data_samples(mask))['loss']
    with torch.no_grad():
        expected = simmim_reference_loss(model, img, mask)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=0)
    loss.backward()
    assert model.backbone.mask_token.grad.abs().sum() > 0
