# Copyright (c) um-mae contributors. All rights reserved.
"""Each transfer recipe starts from the checkpoint its paper starts from.

UM-MAE transfers a pyramid ViT (PVT, Swin) after an intermediate ImageNet
fine-tuning (section 4.3, Table 6: "crucial"; the official DET / SEG
configs load ``finetune_..._200e_100e/checkpoint-99.pth``; Table 5's HTC++
Swin-L after the fine-tuning of Table 4), a plain ViT straight from the
pre-training (section 4 pilot settings). The direct-transfer row of Table 6
is the one pyramid recipe that starts from the pre-training. A recipe's
``pretrained`` is the last checkpoint of the config that produces it; the
config must exist, so a renamed pre-training / fine-tuning config cannot
leave a transfer recipe pointing at nothing.
"""
import ast
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRE, FT = 'pretrain', 'finetune'
# transfer config -> (stage of the run it starts from, that run's config)
STARTS = {
    'det/gfl/gfl_pvt-small_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py':
    (FT, 'pvt/pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'det/gfl/gfl_swin-tiny_fpn-syncbn_8xb2-amp-lsj-1024-25e_coco.py':
    (FT, 'swin/swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'det/gfl/gfl_vit-base-p16_fpn-syncbn_8xb2-amp-lsj-896-25e_coco.py':
    (PRE, 'ummae/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'),
    'det/mask_rcnn/mask-rcnn_pvt-small_fpn-syncbn_32xb2-amp-lsj-1024-100e_'
    'coco.py':
    (FT, 'pvt/pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'det/mask_rcnn/mask-rcnn_swin-tiny_fpn-syncbn_32xb2-amp-lsj-1024-100e_'
    'coco.py':
    (FT, 'swin/swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'det/mask_rcnn/mask-rcnn_vit-base-p16_fpn-syncbn_32xb2-amp-lsj-1024-100e_'
    'coco.py':
    (PRE, 'ummae/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'),
    'det/mask_rcnn/mask-rcnn_vit-large-p16_fpn-syncbn_32xb2-amp-lsj-1024-'
    '100e_coco.py':
    (PRE, 'ummae/ummae_vit-large-p16_8xb128-accum4-amp-coslr-800e_in1k'),
    'det/htc/htcpp_swin-large_fpn_16xb1-amp-ms-400-1400-36e_coco.py':
    (FT, 'swin/swin-large_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'seg/upernet/pvt-small_ummae-ft_upernet_8xb2-amp-160k_ade20k-512x512.py':
    (FT, 'pvt/pvt-small_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'seg/upernet/swin-tiny_ummae-ft_upernet_8xb2-amp-160k_ade20k-512x512.py':
    (FT, 'swin/swin-tiny_ummae-pre_8xb64-accum2-amp-coslr-100e_in1k-256px'),
    'seg/upernet/swin-tiny_ummae-pre_upernet_8xb2-amp-160k_ade20k-512x512.py':
    (PRE, 'ummae/ummae_swin-tiny_8xb128-accum4-amp-coslr-200e_in1k-256px'),
    'seg/upernet/vit-base-p16-adaptor_ummae-pre_upernet_8xb2-amp-160k_'
    'ade20k-512x512.py':
    (PRE, 'ummae/ummae_vit-base-p16_8xb128-accum4-amp-coslr-200e_in1k'),
}


def _pretrained(path):
    """The file's own top-level ``pretrained`` (what PretrainedHook loads)."""
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == 'pretrained' for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f'{path} sets no pretrained')


@pytest.mark.parametrize('config', sorted(STARTS))
def test_transfer_recipe_starts_where_its_paper_starts(config):
    stage, source = STARTS[config]
    src = osp.join(REPO, 'configs', stage, source + '.py')
    assert osp.isfile(src), f'{config} starts from a missing config {src}'
    epochs = int(re.search(r'-(\d+)e_', source).group(1))
    name = osp.basename(source)
    assert _pretrained(osp.join(REPO, 'configs', config)) == \
        f'work_dirs/{name}/epoch_{epochs}.pth'


@pytest.mark.dense  # builds det / seg configs (mmdet / mmseg bases)
def test_direct_transfer_row_differs_only_in_its_checkpoint():
    """UM-MAE Table 6: "no intermediate" is the fine-tuned recipe started
    from the pre-training checkpoint."""
    from mmengine.config import Config
    root = osp.join(REPO, 'configs', 'seg', 'upernet')
    ft = Config.fromfile(
        osp.join(
            root, 'swin-tiny_ummae-ft_upernet_8xb2-amp-160k_'
            'ade20k-512x512.py'))
    direct = Config.fromfile(
        osp.join(
            root, 'swin-tiny_ummae-pre_upernet_8xb2-amp-160k_'
            'ade20k-512x512.py'))
    assert direct.model.backbone.init_cfg.checkpoint == direct.pretrained
    ft.pretrained = direct.pretrained
    ft.model.backbone.init_cfg.checkpoint = direct.pretrained
    assert ft.to_dict() == direct.to_dict()
