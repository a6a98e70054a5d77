# Stage 1 row "(D) Unified lr" of the course report's Table 1: row (B) with
# the backbone trained too, at the lr of the neck and heads.
_base_ = './faster-rcnn_vit-base-p16_simple-pyramid_' \
    'mae-pre_stage1-b-freeze_1xb2-15e_coco-512px.py'

# model
model = dict(backbone=dict(frozen=False))  # Table 1 (D): not frozen
