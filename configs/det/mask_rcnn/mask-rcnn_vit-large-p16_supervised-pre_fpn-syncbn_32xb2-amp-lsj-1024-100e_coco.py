# Mask R-CNN ViT-L, supervised initialization: a timm vit_large_patch16_224
# checkpoint (.bin or model.safetensors; DeiT has no ViT-L).
_base_ = './mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/vit_large_patch16_224/model.safetensors'
