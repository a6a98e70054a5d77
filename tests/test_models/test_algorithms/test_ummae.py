# Copyright (c) um-mae contributors. All rights reserved.
"""UMMAE on PVT, and the SimMIM-PVT / MAE-ViT baselines, in mode='loss'."""
import os.path as osp

import pytest
import torch
from conftest import PVT_FIXTURE_ARCH, pipeline_batch, simmim_reference_loss
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import um_mae  # noqa: F401
from um_mae.models.converters import convert

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SIMMIM_PVT_DEMO = osp.join(REPO, 'configs', 'pretrain', 'simmim',
                           'simmim_pvt-demo_1xb8-10e_demo-128px.py')
MAE_VIT_DEMO = osp.join(REPO, 'configs', 'pretrain', 'mae',
                        'mae_vit-tiny-p16_1xb8-10e_demo-128px.py')
HEAD = dict(
    type='MAEPretrainHead',
    norm_pix=True,
    patch_size=16,
    loss=dict(type='PixelReconstructionLoss', criterion='L2'))


def _ummae(**neck_kwargs):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='UMMAE',
            backbone=dict(
                type='UMPVT',
                arch='demo',
                img_size=64,
                with_vis_mask_token=True),
            neck=dict(
                type='MAEPyramidDecoder',
                in_channels=128,
                img_size=64,
                embed_dims=32,
                depth=1,
                num_heads=4,
                **neck_kwargs),
            head=HEAD,
            data_preprocessor=dict(
                type='SelfSupDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True)))
    model.init_weights()
    return model


def test_ummae_loss_and_gradients_reach_the_encoder():
    model = _ummae()
    data = model.data_preprocessor(
        pipeline_batch(
            dict(type='UniformMaskGenerator', strategy='UM'),
            algorithm_keys=['secondary_mask']), True)
    # both masks are packed as tensors
    assert isinstance(data['data_samples'][0].get('secondary_mask'),
                      torch.Tensor)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss'} and torch.isfinite(losses['loss'])
    losses['loss'].backward()
    backbone = model.backbone
    assert backbone.vis_mask_token.grad.abs().sum() > 0
    for name, param in backbone.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, \
                name
    assert backbone.pos_embed.grad is None  # frozen sin-cos table


def test_ummae_extract_feat_is_dense():
    model = _ummae()
    feats = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert feats[-1].shape == (1, 128, 2, 2)


def test_ummae_needs_a_mask():
    model = _ummae()
    with pytest.raises(ValueError, match='add UniformMaskGenerator'):
        model.loss(torch.randn(1, 3, 64, 64), [DataSample()])


def _fixture_ummae(ref, official=False):
    model = MODELS.build(
        dict(
            type='UMMAE',
            backbone=dict(
                type='UMPVT', arch=PVT_FIXTURE_ARCH, with_vis_mask_token=True),
            neck=dict(
                type='MAEPyramidDecoder',
                in_channels=64,
                embed_dims=64,
                depth=1,
                num_heads=4,
                official_pos_order=official),
            head=HEAD))
    state_dict, report = convert({'model': ref['state_dict']})
    assert report['unused'] == []
    model.load_state_dict(state_dict, strict=True)
    return model.double()


def _fixture_samples(ref, secondary=True):
    samples = []
    for n in range(2):
        sample = DataSample()
        sample.set_mask(ref['mask'][n].reshape(16, 16))
        if secondary:
            sample.set_field(ref['secondary_mask'][n].reshape(16, 16).numpy(),
                             'secondary_mask')
        samples.append(sample)
    return samples


@pytest.mark.parametrize('official', [True, False])
def test_ummae_loss_matches_fixture(reference, official):
    ref = reference('mae_pvt.pt')
    model = _fixture_ummae(ref, official)
    with torch.no_grad():
        loss = model.loss(ref['img'].double(), _fixture_samples(ref))['loss']
    expected = ref['loss'] if official else ref['loss_pos_matched']
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-10)


def test_ummae_without_secondary_mask(reference):
    """The US path (no ``secondary_mask``, as ``strategy='US'`` packs it),
    on the fixture weights and images: the loss is the mean squared error
    of the model's predictions against the official normalised targets
    (``target_raster``) on the primary-masked tokens, the same as with a
    secondary mask that hides nothing, and not the secondary-masked loss.
    Planted bug caught: the head given the visible tokens (``~mask``)."""
    ref = reference('mae_pvt.pt')
    model = _fixture_ummae(ref)
    img = ref['img'].double()
    mask = ref['mask'].reshape(2, 16, 16)
    nothing_hidden = _fixture_samples(ref, secondary=False)
    for sample in nothing_hidden:
        sample.set_field(sample.mask.numpy(), 'secondary_mask')
    with torch.no_grad():
        loss = model.loss(img, _fixture_samples(ref, False))['loss']
        same = model.loss(img, nothing_hidden)['loss']
        pred = model.neck(model.backbone(img, mask)[-1], mask)  # (N, L, 768)
    rows = ref['mask']  # (N, L) primary-masked tokens
    expected = ((pred[rows] - ref['target_raster'][rows].double())**2).mean()
    # target_raster is stored in float32
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(loss, same, rtol=0, atol=1e-12)
    assert abs(loss - ref['loss_pos_matched']) > 1e-4


def _config_model(config):
    """The model of a shipped pre-training config at 64 px, seeded."""
    from um_mae.toolkit.pretrain_inputs import load_pretrain_config
    cfg = load_pretrain_config(config, 64)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_simmim_on_pvt_loss():
    """The demo SimMIM-PVT config's loss equals SimMIM's rule written out
    (:func:`conftest.simmim_reference_loss`) on a pipeline-made mask.
    Planted bug caught: the config's ``channel=3`` of the L1 loss dropped
    (the loss 3x too large)."""
    model = _config_model(SIMMIM_PVT_DEMO)
    data = model.data_preprocessor(
        pipeline_batch(dict(type='UniformMaskGenerator', strategy='RS')), True)
    mask = torch.stack([s.mask for s in data['data_samples']]).bool()
    assert mask.shape == (2, 4, 4) and mask.any() and not mask.all()
    loss = model(**data, mode='loss')['loss']
    with torch.no_grad():
        expected = simmim_reference_loss(model, data['inputs'], mask)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=0)
    loss.backward()
    assert model.backbone.mask_token.grad.abs().sum() > 0


def test_mae_vit_baseline_loss():
    """The MAE demo config (``ReconstructingMAE``) against MAE's loss
    written out: per-patch normalised pixels (mean, unbiased variance,
    eps 1e-6), squared error averaged over each removed patch, then over
    the removed patches; the mask and prediction are the model's own (same
    seed). Planted bug caught: ``norm_pix=False`` in the config's head."""
    model = _config_model(MAE_VIT_DEMO)
    data = model.data_preprocessor(
        dict(
            inputs=torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8),
            data_samples=[DataSample(), DataSample()]), True)
    torch.manual_seed(1)
    loss = model(**data, mode='loss')['loss']
    torch.manual_seed(1)  # the same random mask
    with torch.no_grad():
        latent, mask, ids_restore = model.backbone(data['inputs'])
        pred = model.neck(latent, ids_restore)  # (N, 16, 16*16*3)
    x = data['inputs']
    patches = x.reshape(2, 3, 4, 16, 4, 16).permute(0, 2, 4, 3, 5,
                                                    1).reshape(2, 16, -1)
    target = (patches - patches.mean(-1, keepdim=True)) / (
        patches.var(-1, keepdim=True) + 1e-6)**.5
    per_patch = ((pred - target)**2).mean(-1)
    assert mask.sum() == 2 * 12  # 75% of 16 patches removed
    expected = (per_patch * mask).sum() / mask.sum()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=0)
