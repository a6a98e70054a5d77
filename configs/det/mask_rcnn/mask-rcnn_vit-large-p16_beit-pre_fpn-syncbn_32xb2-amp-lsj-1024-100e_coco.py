# Mask R-CNN ViT-L, BEiT initialization: BEiT's layer scale and relative
# position biases, a random absolute position table (see the ViT-B BEiT
# config).
_base_ = './mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/beit_large_patch16_224_pt22k.pth'

# model
model = dict(
    backbone=dict(
        # Li et al. 3 (3): layer scale (BEiT-L's; the checkpoint's is loaded)
        layer_scale_init_value=1e-5,
        # Li et al. section 3: BEiT transfers its relative position biases
        # (into both shared tables); the absolute table starts random
        transferred_pos=('rel', )))

# schedule: no weight decay on the layer scale
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.)}))
