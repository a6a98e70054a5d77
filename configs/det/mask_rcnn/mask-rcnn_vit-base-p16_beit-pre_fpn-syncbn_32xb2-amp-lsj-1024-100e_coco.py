# Mask R-CNN ViT-B, BEiT initialization (Li et al.'s "BEiT" arm): the
# backbone is parameterised as BEiT's ViT: layer scale on both branches of
# every block, no absolute position embedding; BEiT's q / v biases load
# into the qkv bias and its relative position biases (shared or per block)
# into every block's table, interpolated to the window / global grid.
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/beit_base_patch16_224_pt22k.pth'

# model
model = dict(
    backbone=dict(
        layer_scale_init_value=0.1,  # BEiT-B's; the checkpoint's is loaded
        use_abs_pos_embed=False))

# schedule: no weight decay on the layer scale (BEiT fine-tunes it so)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.)}))
