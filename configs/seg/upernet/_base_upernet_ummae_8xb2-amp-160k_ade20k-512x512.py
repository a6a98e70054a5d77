# UperNet on ADE20K for UM-MAE backbones (UM-MAE paper, B.4): 512x512
# crops, UPerHead (768 channels) + auxiliary FCNHead on stage 3, AdamW lr
# 1e-4 wd 0.05, 1500 warm-up iterations then poly decay to 0 at 160k, slide
# inference (512 windows, stride 341). Per-model files set the backbone
# (and its checkpoint, `model.backbone.init_cfg.checkpoint`), the head
# input widths and, where it is not 1, the layer-decay rate.
#
# The official backbones end with a 1x1 conv per stage to 768 channels
# before the head; here the stage maps enter UPerHead directly, whose own
# 1x1 lateral / PPM / auxiliary convs compose with such a linear map.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    '../../_base_/um_mae_runtime.py',
]

# model
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='CheckedPretrained', checkpoint=None, prefix='backbone.')),
    decode_head=dict(channels=768, num_classes=150),
    auxiliary_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# data: 8 GPUs x 2 = 16 images per iteration; mmseg's pipeline plus a check
# right after LoadAnnotations: a label map of another size than its image
# stops the run when its sample is read
train_pipeline = _base_.train_pipeline
train_pipeline.insert(2, dict(type='mmpretrain.CheckSegMapSize'))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

# schedule: layer-wise lr decay over the backbone (1.0 = none; the
# no-weight-decay split of norms, biases and embeddings always applies)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmpretrain.UMLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        by_epoch=False,
        begin=1500,
        end=160000)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# runtime: new checkpoints are written before old ones are deleted
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
