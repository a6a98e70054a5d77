# Copyright (c) um-mae contributors. All rights reserved.
"""UMMAE on PVT, and the SimMIM-PVT / MAE-ViT baselines, in mode='loss'."""

import pytest
import torch
from conftest import PVT_FIXTURE_ARCH, pipeline_batch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import um_mae  # noqa: F401
from um_mae.models.converters import convert

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


def test_ummae_without_secondary_mask():
    model = _ummae()
    data = model.data_preprocessor(
        pipeline_batch(dict(type='UniformMaskGenerator', strategy='US')), True)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)


def test_ummae_extract_feat_is_dense():
    model = _ummae()
    feats = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert feats[-1].shape == (1, 128, 2, 2)


def test_ummae_needs_a_mask():
    model = _ummae()
    with pytest.raises(ValueError, match='add UniformMaskGenerator'):
        model.loss(torch.randn(1, 3, 64, 64), [DataSample()])


@pytest.mark.parametrize('official', [True, False])
def test_ummae_loss_matches_fixture(reference, official):
    ref = reference('mae_pvt.pt')
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
    model.double()
    samples = []
    for n in range(2):
        sample = DataSample()
        sample.set_mask(ref['mask'][n].reshape(16, 16))
        sample.set_field(ref['secondary_mask'][n].reshape(16, 16).numpy(),
                         'secondary_mask')
        samples.append(sample)
    with torch.no_grad():
        loss = model.loss(ref['img'].double(), samples)['loss']
    expected = ref['loss'] if official else ref['loss_pos_matched']
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-10)


def test_simmim_on_pvt_loss():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='SimMIM',
            backbone=dict(
                type='UMPVT', arch='demo', img_size=64,
                mask_mode='mask_token'),
            neck=dict(
                type='SimMIMNormLinearDecoder',
                in_channels=128,
                encoder_stride=32),
            head=dict(
                type='SimMIMHead',
                patch_size=16,
                loss=dict(
                    type='PixelReconstructionLoss', criterion='L1',
                    channel=3))))
    model.init_weights()
    data = model.data_preprocessor(
        pipeline_batch(dict(type='UniformMaskGenerator', strategy='RS')), True)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    assert model.backbone.mask_token.grad.abs().sum() > 0


def test_mae_vit_baseline_loss():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(
                type='MAEViT',
                arch=dict(
                    embed_dims=32,
                    num_layers=2,
                    num_heads=4,
                    feedforward_channels=64),
                img_size=64,
                patch_size=16,
                mask_ratio=0.75),
            neck=dict(
                type='MAEPretrainDecoder',
                num_patches=16,
                embed_dim=32,
                decoder_embed_dim=32,
                decoder_depth=1,
                decoder_num_heads=4),
            head=HEAD))
    model.init_weights()
    data = model.data_preprocessor(
        dict(
            inputs=torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8),
            data_samples=[DataSample(), DataSample()]), True)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
