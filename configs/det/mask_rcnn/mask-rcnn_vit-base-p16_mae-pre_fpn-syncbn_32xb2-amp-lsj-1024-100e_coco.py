# Mask R-CNN ViT-B, MAE initialization (Li et al.'s "MAE" arm): the official
# MAE encoder mae_pretrain_vit_base.pth (a full MAE pre-training checkpoint
# or an mmpretrain MAE checkpoint load too: the decoder is left out).
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/mae_pretrain_vit_base.pth'
