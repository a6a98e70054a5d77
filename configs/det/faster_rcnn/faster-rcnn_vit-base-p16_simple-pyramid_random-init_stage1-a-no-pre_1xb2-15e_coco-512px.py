# Stage 1 row "(A) No Pre-training" of the course report's Table 1: row (D)
# (backbone trained, one lr) from a randomly initialised ViT-B.
_base_ = './faster-rcnn_vit-base-p16_simple-pyramid_' \
    'mae-pre_stage1-d-unified-lr_1xb2-15e_coco-512px.py'

pretrained = None  # Table 1 (A): no pre-training
