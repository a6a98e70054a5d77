# Intermediate fine-tuning on ImageNet-1k after UM-MAE pre-training (UM-MAE
# paper, Table 8): 100 epochs, AdamW, layer-wise lr decay, label smoothing
# 0.1, Mixup 0.8 / CutMix 1.0. Per-model files add the data (mmpretrain's
# Swin pipelines: RandAug rand-m9-mstd0.5, random erasing 0.25, 64 images
# per GPU; 256 px for PVT / Swin, 224 px for ViT) and pick the backbone, the
# head width, the drop path and layer-decay rates and the pre-trained
# checkpoint (`model.backbone.init_cfg.checkpoint`, also on the command
# line: --cfg-options model.backbone.init_cfg.checkpoint=PATH).
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/um_mae_runtime.py',
]

# model: global average pooling + norm (backbone out_type='avg_featmap') +
# linear head; the pre-trained encoder is the `backbone.` part of an UMMAE
# checkpoint
model = dict(
    type='ImageClassifier',
    backbone=dict(
        out_type='avg_featmap',
        drop_path_rate=0.1,  # UM-MAE Table 8 (ViT-B, Swin-T, PVT-S)
        init_cfg=dict(
            type='CheckedPretrained', checkpoint=None, prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        loss=dict(
            type='LabelSmoothLoss',
            label_smooth_val=0.1,  # UM-MAE Table 8
            mode='original'),
        # the official head starts from trunc-normal std 2e-5
        init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5)),
    # one of Mixup / CutMix per batch, each half of the time
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),  # UM-MAE Table 8
        dict(type='CutMix', alpha=1.0)  # UM-MAE Table 8
    ]))

# schedule: 8 GPUs x 64 x accum 2 = 1024 images per step (UM-MAE Table 8),
# lr = 5e-4 x 1024 / 256 (Table 8 base lr, B.2 linear rule); the lr of
# backbone depth d is scaled by layer_decay_rate ** (num_layers + 1 - d),
# the rate set per model (Table 8)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    accumulative_counts=2,  # UM-MAE Table 8
    optimizer=dict(
        type='AdamW',  # UM-MAE Table 8
        lr=5e-4 * 1024 / 256,
        betas=(0.9, 0.999),  # UM-MAE Table 8
        weight_decay=0.05),  # UM-MAE Table 8
    constructor='UMLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.85))  # Table 8 (Swin-T, PVT-S)
# the official util/lr_sched.py: per iteration from the fractional epoch,
# linear from 0 to the peak at the end of the warm-up, half-cycle cosine to
# min_lr (x each group's layer-decay scale); `end` = train_cfg.max_epochs
param_scheduler = dict(
    type='WarmupHalfCosineLR',
    warmup_epochs=5,  # UM-MAE Table 8
    eta_min=1e-6,  # official main_finetune.py --min_lr default
    by_epoch=True,
    begin=0,
    convert_to_iter_based=True)
# UM-MAE Sec. 4: 100 epochs of fine-tuning
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# mmengine scales by GPUs x batch per GPU, not by the accumulation:
# 8 x 64 = 512 stands for the 1024-image step above
auto_scale_lr = dict(base_batch_size=512)

# runtime
default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
