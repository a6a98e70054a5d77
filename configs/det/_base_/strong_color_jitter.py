# Strong colour jitter of the second stage of the simple-pyramid Faster
# R-CNN recipe: brightness, contrast and saturation factors drawn from
# [0.1, 2.0], hue shifted by up to 0.1 of the colour circle, in random order
# (torchvision's factors on mmcv's BGR images: mmpretrain's ColorJitter,
# with a hue step that works under numpy 2, UMColorJitter).
# A config inherits this file next to its model base and inserts the
# transform into its train pipeline: {{_base_.strong_color_jitter}}.
strong_color_jitter = dict(
    type='mmpretrain.UMColorJitter',
    brightness=(0.1, 2.0),
    contrast=(0.1, 2.0),
    saturation=(0.1, 2.0),
    hue=0.1)
