# Mask R-CNN ViT-L, MoCo v3 initialization: a checkpoint of moco-v3's
# main_moco.py -a vit_large (no ViT-L weights are published), loaded as
# saved; the base encoder is taken.
_base_ = './mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/mocov3_vit-l/checkpoint_0299.pth.tar'
