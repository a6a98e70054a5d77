# Mask R-CNN ViT-B, supervised ImageNet initialization (Li et al.'s
# "supervised" arm): a DeiT-B checkpoint (deit_base_patch16_224-b5f2ef4d.pth,
# the distilled one too) or a timm vit_base_patch16_224 file (.bin or
# model.safetensors). The release is told from the keys; the classifier
# head and DeiT's distillation token are left out.
_base_ = './mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_coco.py'

pretrained = 'checkpoints/deit_base_patch16_224-b5f2ef4d.pth'
