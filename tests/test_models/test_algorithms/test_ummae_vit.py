# Copyright (c) um-mae contributors. All rights reserved.
"""UM-MAE on a plain ViT (UMViT + mmpretrain's MAE decoder and head)."""
import numpy as np
import pytest
import torch
from conftest import mask_data_samples
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

import um_mae  # noqa: F401
from um_mae.models.converters import (convert, convert_official_vit,
                                      convert_official_vit_decoder)

# mae_vit.pt config['kwargs']: embed 32, depth 2, 4 heads, mlp ratio 4
FIXTURE_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=128)


def _ummae_vit():
    return MODELS.build(
        dict(
            type='UMMAEViT',
            backbone=dict(
                type='UMViT',
                arch=FIXTURE_ARCH,
                img_size=64,
                patch_size=16,
                with_vis_mask_token=True),
            neck=dict(
                type='MAEPretrainDecoder',
                num_patches=16,
                patch_size=16,
                embed_dim=32,
                decoder_embed_dim=32,
                decoder_depth=1,
                decoder_num_heads=4,
                mlp_ratio=4.),
            head=dict(
                type='MAEPretrainHead',
                norm_pix=True,
                patch_size=16,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))


def _official_model(ref):
    model = _ummae_vit()
    converted, _ = convert(ref['state_dict'])
    model.load_state_dict(converted, strict=True)
    return model.double().eval()


def test_convert_official_vit_keys(reference):
    sd = reference('mae_vit.pt')['state_dict']
    backbone = convert_official_vit(sd)
    neck = convert_official_vit_decoder(sd)
    assert backbone['ln1.weight'] is sd['norm.weight']
    assert backbone['layers.1.ffn.layers.0.0.weight'] is sd[
        'blocks.1.mlp.fc1.weight']
    assert backbone['patch_embed.projection.bias'] is sd[
        'patch_embed.proj.bias']
    assert neck['ln1.bias'] is sd['decoder_norm.bias']
    assert neck['decoder_blocks.0.attn.qkv.weight'] is sd[
        'decoder_blocks.0.attn.qkv.weight']
    # every official key lands in exactly one part
    assert len(backbone) + len(neck) == len(sd)
    _, report = convert({'model': sd})
    assert report['arch'] == 'vit' and report['kind'] == 'pretrain'
    assert report['unused'] == []


def test_convert_official_vit_finetune_layout():
    # models_vit.VisionTransformer(global_pool=True): fc_norm, no norm
    sd = {
        'cls_token': torch.zeros(1, 1, 8),
        'fc_norm.weight': torch.ones(8),
        'blocks.0.attn.qkv.weight': torch.zeros(24, 8),
        'head.weight': torch.zeros(3, 8),
    }
    converted, report = convert(sd)
    assert report['kind'] == 'classifier'
    assert set(converted) == {
        'backbone.cls_token', 'backbone.ln2.weight',
        'backbone.layers.0.attn.qkv.weight', 'head.fc.weight'
    }


def test_fixture_parity_float64(reference):
    ref = reference('mae_vit.pt')
    model = _official_model(ref)
    img = ref['img'].double()
    with torch.no_grad():
        latent, mask, ids_restore = model.backbone(
            img, ref['mask'].view(2, 4, 4),
            ref['secondary_mask'].view(2, 4, 4))
        pred = model.neck(latent, ids_restore)  # raster order
        loss = model.head.loss(pred, img, mask)
        target = model.head.construct_target(img)
    assert latent.shape == ref['latent'].shape == (2, 5, 32)
    torch.testing.assert_close(latent, ref['latent'], rtol=0, atol=1e-10)
    torch.testing.assert_close(pred, ref['pred_raster'], rtol=0, atol=1e-10)
    torch.testing.assert_close(
        target, ref['target_raster'], rtol=0, atol=1e-10)
    torch.testing.assert_close(loss, ref['loss'], rtol=0, atol=1e-10)
    assert torch.equal(mask.bool(), ref['mask'])
    # the decoder sequence [visible, masked] (each raster) is undone
    seq = torch.argsort(ids_restore, dim=1)
    assert torch.equal(seq, ref['pred_seq_ids'])


def test_fixture_loss_through_data_samples(reference):
    ref = reference('mae_vit.pt')
    model = _official_model(ref)
    samples = mask_data_samples(ref['mask'].view(-1, 4, 4),
                                ref['secondary_mask'].view(-1, 4, 4))
    with torch.no_grad():
        losses = model(ref['img'].double(), samples, mode='loss')
    torch.testing.assert_close(losses['loss'], ref['loss'], rtol=0, atol=1e-10)


def test_hidden_pixels_do_not_reach_the_encoder(reference):
    ref = reference('mae_vit.pt')
    model = _official_model(ref)
    img = ref['img'].double()
    mask = ref['mask'].view(2, 4, 4)
    secondary = ref['secondary_mask'].view(2, 4, 4)
    # scribble on every token the encoder must not see (dropped or
    # secondary-masked) and on nothing else
    hidden = secondary.repeat_interleave(16, 1).repeat_interleave(16, 2)
    noisy = torch.where(hidden[:, None], torch.randn_like(img) * 5, img)
    with torch.no_grad():
        a = model.backbone(img, mask, secondary)[0]
        b = model.backbone(noisy, mask, secondary)[0]
        c = model.backbone(noisy, mask, None)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # without the secondary mask the replaced tokens are seen again
    assert (a - c).abs().max() > 1e-3


def test_loss_mode_gradients():
    torch.manual_seed(0)
    model = _ummae_vit()
    model.init_weights()
    model.train()
    generator = TRANSFORMS.build(
        dict(type='UniformMaskGenerator', strategy='UM', input_size=64))
    pack = TRANSFORMS.build(
        dict(type='PackInputs', algorithm_keys=['secondary_mask']))
    np.random.seed(0)
    samples = [
        pack(generator(
            dict(img=np.zeros((64, 64, 3), np.uint8))))['data_samples']
        for _ in range(2)
    ]
    losses = model(torch.randn(2, 3, 64, 64), samples, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    backbone = model.backbone
    for name, param in [
        ('patch_embed', backbone.patch_embed.projection.weight),
        ('first layer', backbone.layers[0].attn.qkv.weight),
        ('vis_mask_token', backbone.vis_mask_token),
        ('decoder mask_token', model.neck.mask_token),
    ]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # the fixed sin-cos tables stay frozen
    assert backbone.pos_embed.grad is None


def test_unmasked_forward_is_vision_transformer():
    torch.manual_seed(0)
    ours = MODELS.build(
        dict(
            type='UMViT',
            arch=FIXTURE_ARCH,
            img_size=64,
            out_type='avg_featmap',
            final_norm=False,
            with_vis_mask_token=True))
    ours.init_weights()
    vit = VisionTransformer(
        arch=FIXTURE_ARCH,
        img_size=64,
        out_type='avg_featmap',
        final_norm=False)
    missing, unexpected = vit.load_state_dict(ours.state_dict(), strict=False)
    assert missing == [] and unexpected == ['vis_mask_token']
    ours.eval()
    vit.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x)[0], vit(x)[0])
    assert ours(x)[0].shape == (2, 32)


def test_errors():
    backbone = MODELS.build(dict(type='UMViT', arch=FIXTURE_ARCH, img_size=64))
    x = torch.randn(2, 3, 64, 64)
    mask = torch.ones(2, 4, 4, dtype=torch.bool)
    mask[:, ::2, ::2] = False
    with pytest.raises(ValueError, match='with_vis_mask_token=True'):
        backbone(x, mask, mask)
    uneven = mask.clone()
    uneven[1, 1, 1] = False
    with pytest.raises(ValueError, match='same number of tokens'):
        backbone(x, uneven)
    with pytest.raises(ValueError, match='has 16'):
        backbone(x, torch.zeros(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match='without mask'):
        backbone(x, None, mask)
    with_token = MODELS.build(
        dict(
            type='UMViT',
            arch=FIXTURE_ARCH,
            img_size=64,
            with_vis_mask_token=True))
    with pytest.raises(ValueError, match='superset'):
        with_token(x, mask, torch.zeros_like(mask))
    model = _ummae_vit()
    with pytest.raises(ValueError, match='UniformMaskGenerator'):
        model(x, [DataSample(), DataSample()], mode='loss')
