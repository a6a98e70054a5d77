# Stage 2 of the simple-pyramid Faster R-CNN recipe with layer-wise lr
# decay (the report's best single change): block i of the 12 gets lr x
# 0.7 ** (12 + 1 - (i + 1)), the embeddings 0.7 ** 13; the neck and heads
# the base lr. No weight decay on norms, biases and position tables, as in
# stage 2.
_base_ = './faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_stage2-jitter_' \
    '1xb2-20e_coco-512px.py'

# schedule
optim_wrapper = dict(
    constructor='mmpretrain.UMLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.7,  # ViTDet's for ViT-B
        no_decay_names=('pos_embed', 'cls_token',
                        'relative_position_bias_table')))
