# Mask R-CNN ViT-B, BEiT initialization (Li et al.'s "BEiT" arm): layer
# scale on both branches of every block (Li et al. 3 (3)); BEiT's q / v
# biases load into the qkv bias and its shared relative position bias table
# into the two shared tables (windowed, global), interpolated to their
# grids; the absolute position table is randomly initialised (Li et al. 3
# (2)). A fine-tuned BEiT with per-block tables is refused, not averaged.
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/beit_base_patch16_224_pt22k.pth'

# model
model = dict(
    backbone=dict(
        # Li et al. 3 (3): layer scale (BEiT-B's; the checkpoint's is loaded)
        layer_scale_init_value=0.1,
        # Li et al. section 3: BEiT transfers its relative position biases
        # (into both shared tables); the absolute table starts random
        transferred_pos=('rel', )))

# schedule: no weight decay on the layer scale (BEiT fine-tunes it so)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'gamma': dict(decay_mult=0.)}))
