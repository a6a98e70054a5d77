# Copyright (c) um-mae contributors. All rights reserved.
"""MAEPyramidDecoder (+ mmpretrain's MAEPretrainHead) vs the PVT fixture."""
import pytest
import torch
from conftest import PVT_FIXTURE_ARCH
from mmpretrain.registry import MODELS

import um_mae  # noqa: F401
from um_mae.models.backbones import UMPVT
from um_mae.models.converters import (convert_official_mae_decoder,
                                      convert_official_pvt)
from um_mae.models.necks import MAEPyramidDecoder, SimMIMNormLinearDecoder


@pytest.fixture(scope='module')
def pvt_run():
    """Fixture data and the last compact encoder map, in float64."""
    from conftest import load_reference
    ref = load_reference('mae_pvt.pt')
    encoder = UMPVT(arch=PVT_FIXTURE_ARCH, with_vis_mask_token=True)
    encoder.load_state_dict(convert_official_pvt(ref['state_dict']))
    encoder.double()
    encoder.eval()
    mask = ref['mask'].reshape(2, 16, 16)
    with torch.no_grad():
        last = encoder(ref['img'].double(), mask,
                       ref['secondary_mask'].reshape(2, 16, 16))[-1]
    return ref, mask, last


def _decoder(ref, **kwargs):
    neck = MAEPyramidDecoder(
        in_channels=64, embed_dims=64, depth=1, num_heads=4, **kwargs)
    neck.load_state_dict(convert_official_mae_decoder(ref['state_dict']))
    neck.double()
    neck.eval()
    return neck


def _head():
    return MODELS.build(
        dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=16,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def test_latent_matches_fixture(pvt_run):
    ref, _, last = pvt_run
    with torch.no_grad():
        latent = _decoder(ref).latent(last)
    torch.testing.assert_close(latent, ref['latent'], rtol=0, atol=1e-10)


def test_official_pos_order_reproduces_pred_and_loss(pvt_run):
    ref, mask, last = pvt_run
    with torch.no_grad():
        pred = _decoder(ref, official_pos_order=True)(last, mask)
        loss = _head().loss(pred, ref['img'].double(), mask.flatten(1))
    torch.testing.assert_close(
        pred, ref['pred_raster'].double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss, ref['loss'], rtol=0, atol=1e-10)


def test_default_pairs_features_with_their_own_positions(pvt_run):
    ref, mask, last = pvt_run
    with torch.no_grad():
        pred = _decoder(ref)(last, mask)
        loss = _head().loss(pred, ref['img'].double(), mask.flatten(1))
    torch.testing.assert_close(
        loss, ref['loss_pos_matched'], rtol=0, atol=1e-10)
    # and differs from the official pairing on the visible rows
    visible = ~ref['mask']
    diff = (pred - ref['pred_raster'].double())[visible].abs().max()
    assert diff > 0.1


def test_head_target_matches_fixture(pvt_run):
    ref, _, _ = pvt_run
    target = _head().construct_target(ref['img'].double())
    torch.testing.assert_close(
        target, ref['target_raster'].double(), rtol=1e-6, atol=1e-6)


def test_converter_covers_every_decoder_key(pvt_run):
    ref, _, _ = pvt_run
    converted = convert_official_mae_decoder(ref['state_dict'])
    neck = MAEPyramidDecoder(
        in_channels=64, embed_dims=64, depth=1, num_heads=4)
    assert set(converted) == set(neck.state_dict())


def test_shapes_for_other_input_sizes():
    neck = MAEPyramidDecoder(
        in_channels=32, img_size=256, embed_dims=16, depth=1, num_heads=2)
    neck.init_weights()
    mask = torch.ones(2, 4, 6, 4, dtype=torch.bool)
    mask[..., 0] = False  # keep the top-left token of every block
    mask = mask.reshape(2, 4, 6, 2, 2).permute(0, 1, 3, 2, 4).reshape(2, 8, 12)
    pred = neck(torch.randn(2, 32, 2, 3), mask)
    assert pred.shape == (2, 96, 768)
    with pytest.raises(ValueError, match='does not match a stride-32 map'):
        neck(torch.randn(2, 32, 2, 2), mask)


def test_simmim_decoder_reconstructs_full_image():
    neck = SimMIMNormLinearDecoder(in_channels=32, encoder_stride=32)
    out = neck(torch.randn(2, 32, 2, 3))
    assert out.shape == (2, 3, 64, 96)
    # the norm runs over channels: a per-location channel shift is removed
    x = torch.randn(1, 32, 2, 2)
    shifted = x + torch.randn(1, 1, 2, 2)
    torch.testing.assert_close(neck(x), neck(shifted), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('depth', [1, 2])
@pytest.mark.parametrize('predict_visible', [True, False])
def test_skipped_work_does_not_change_loss_or_grads(
        monkeypatch, depth, predict_visible):
    """Against mmpretrain's own layer forward over every row."""
    from um_mae.models.necks import mae_pyramid_decoder
    torch.manual_seed(0)
    neck = MAEPyramidDecoder(
        in_channels=32, embed_dims=32, depth=depth, num_heads=4).double()
    neck.init_weights()
    for p in neck.parameters():  # break the zero/one init symmetries
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    head = _head()
    keep = torch.randint(0, 4, (2, 64))  # one kept token per 2x2 block
    mask = torch.ones(2, 64, 4, dtype=torch.bool)
    mask.scatter_(2, keep.unsqueeze(-1), False)
    mask = mask.reshape(2, 8, 8, 2, 2).permute(0, 1, 3, 2, 4)
    mask = mask.reshape(2, 16, 16)
    img = torch.randn(2, 3, 256, 256, dtype=torch.float64)
    x = torch.randn(2, 32, 4, 4, dtype=torch.float64)

    def loss_and_grads():
        neck.zero_grad()
        xi = x.clone().requires_grad_()
        pred = neck(xi, mask, predict_visible=predict_visible)
        loss = head.loss(pred, img, mask.flatten(1))
        loss.backward()
        grads = {
            n: p.grad.clone()
            for n, p in neck.named_parameters() if p.grad is not None
        }
        return pred, loss, xi.grad, grads

    pred, loss, grad_x, grads = loss_and_grads()
    with monkeypatch.context() as m:
        # every layer over every row, the first one from its own input
        m.setattr(mae_pyramid_decoder, '_layer_forward',
                  lambda layer, x, start=0, qkv=None: layer(x)[:, start:])
        ref_pred, ref_loss, ref_grad_x, ref_grads = loss_and_grads()

    dropped = mask.flatten(1)
    torch.testing.assert_close(pred[dropped], ref_pred[dropped])
    if predict_visible:
        torch.testing.assert_close(pred, ref_pred)
    else:
        assert pred[~dropped].abs().max() == 0
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad_x, ref_grad_x)
    assert set(grads) == set(ref_grads)
    assert 'mask_token' in grads
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)
