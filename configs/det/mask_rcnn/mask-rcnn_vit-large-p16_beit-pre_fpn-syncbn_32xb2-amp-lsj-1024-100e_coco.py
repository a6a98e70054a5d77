# Mask R-CNN ViT-L, BEiT initialization: BEiT's layer scale and relative
# position biases, no absolute position embedding (see the ViT-B BEiT
# config).
_base_ = './mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/beit_large_patch16_224_pt22k.pth'

# model
model = dict(
    backbone=dict(
        layer_scale_init_value=1e-5,  # BEiT-L's; the checkpoint's is loaded
        use_abs_pos_embed=False))

# schedule: no weight decay on the layer scale
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.)}))
