# Stage 2 row "(B) -> (E)" of the course report's Table 1: the whole
# detector starts from the best checkpoint of the stage-1 row (B) and
# trains 15 more epochs with the setting of row (E) Decay lr.
_base_ = './faster-rcnn_vit-base-p16_simple-pyramid_' \
    'mae-pre_stage1-e-decay-lr_1xb2-15e_coco-512px.py'

# every weight comes from stage 1 (a stage-1 run with another --work-dir:
# --cfg-options load_from=DIR/best_coco_bbox_mAP_stage1.pth)
pretrained = None
load_from = 'work_dirs/faster-rcnn_vit-base-p16_simple-pyramid_mae-pre_' \
    'stage1-b-freeze_1xb2-15e_coco-512px/' \
    'best_coco_bbox_mAP_stage1.pth'

# schedule: Table 1 "Stage 2 (15 epochs)", the stage-1 schedule restarted

# runtime
default_hooks = dict(checkpoint=dict(filename_tmpl='stage2.pth'))
