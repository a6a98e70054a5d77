# Stage 1 row "(E) Decay lr" of the course report's Table 1 (its best stage
# 1): row (D) with a per-layer decayed backbone lr (report section 4,
# "Per-layer decayed learning rate"): block i of the 12 gets lr x
# 0.7 ** (12 + 1 - (i + 1)), the embeddings 0.7 ** 13; the neck and heads
# the base lr. No weight decay on norms, biases and position tables.
_base_ = './faster-rcnn_vit-base-p16_simple-pyramid_' \
    'mae-pre_stage1-d-unified-lr_1xb2-15e_coco-512px.py'

# schedule
optim_wrapper = dict(
    constructor='mmpretrain.UMLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        # the report gives no rate; ViTDet's for ViT-B
        layer_decay_rate=0.7,
        no_decay_names=('pos_embed', 'cls_token',
                        'relative_position_bias_table')))
