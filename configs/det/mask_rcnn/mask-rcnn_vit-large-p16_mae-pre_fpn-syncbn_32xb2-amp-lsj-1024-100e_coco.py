# Mask R-CNN ViT-L, MAE initialization: the official MAE encoder
# mae_pretrain_vit_large.pth.
_base_ = './mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/mae_pretrain_vit_large.pth'
