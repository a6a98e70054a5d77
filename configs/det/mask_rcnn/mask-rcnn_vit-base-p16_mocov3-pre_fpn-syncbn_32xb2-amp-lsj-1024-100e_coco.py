# Mask R-CNN ViT-B, MoCo v3 initialization (Li et al.'s "MoCo v3" arm): the
# official pre-training checkpoint vit-b-300ep.pth.tar as released, of
# which the base encoder is loaded (momentum encoder, projector and
# predictor are left out).
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/vit-b-300ep.pth.tar'
