# MonoDLE (Ma et al., "Delving into Localization Errors for Monocular 3D
# Object Detection", CVPR 2021) on KITTI, 3 classes, with the network, the
# schedule and the augmentation of the authors' release
# (github.com/xinzhuma/monodle e426aa6, experiments/example/kitti_example.yaml
# and lib/). The network is the release's CenterNet3D: DLA-34 (mmdet3d's
# DLANet, the release's lib/backbones/dla.py up to the names of its norm
# layers; its ImageNet weights are loaded by ddml's PretrainedDLA, which
# renames them: mmengine's Pretrained would leave every BN of the tree
# blocks and roots at its initial values, with only a logged warning), the
# release's DLA-up (ddml's MonoDLEDLAUp, lib/backbones/dlaup.py;
# BN, no deformable convolutions; mmdet3d's DLANeck is CenterNet's variant,
# whose nodes sum instead of concatenating and which adds a final IDA-up)
# and seven 256-channel branches with the same outputs; 3D sizes are
# regressed as absolute sizes (the yaml's meanshape: False). 1280x384 input,
# batch 16 (2 GPUs x 8), Adam lr 1.25e-3 with weight decay 1e-5 (none on
# biases), a 5-epoch cosine warm-up from 1e-5, x0.1 at epochs 95 and 125
# (where the release's step scheduler actually drops: it is not stepped
# during the warm-up, so its yaml's 90 and 120 land 5 epochs later;
# lib/helpers/trainer_helper.py), 140 epochs, seed 444; random flip (0.5)
# and random shift/scale (0.5).
# Training targets and evaluation as released (lib/datasets/kitti/
# kitti_dataset.py, tester_helper.py): objects of no KITTI difficulty
# ('UnKnown', the release's +1 px height rule) are background
# (skip_unknown_difficulty); the 2D targets (size, offset, heatmap radius)
# come from the annotated 2D box (bbox2d_source='annotated', the yaml's
# bbox2d_type: 'anno'); images without a kept object train as negatives
# (filter_empty_gt=False); each 3D result is written with MonoDLE's
# regressed 2D box for KITTI's evaluation (KittiMono3DMetric
# bbox2d_source='regressed'), so AP3D/BEV/AOS filter by that box's height as
# the release's figures do. configs/README.md lists what still differs.
# A checkpoint of the release converts to this config with
# tools/convert_release_checkpoint.py (heatmap channels reordered from the
# release's Pedestrian, Car, Cyclist to mmdet3d's Pedestrian, Cyclist, Car;
# size channels from (h, w, l) to (l, h, w)); it then gives the release's
# outputs on the same input.
# Differences from the release in the network and the augmentation:
# - RandomShiftScale draws shift and scale uniformly from
#   {-0.2, -0.1, 0, 0.1, 0.2} and {0.6, 0.7, ..., 1.4}; the release draws
#   clip(N(0, 0.1), +-0.2) and clip(N(1, 0.4), 0.6, 1.4).
_base_ = [
    'mmdet3d::_base_/datasets/kitti-mono3d.py',
    'mmdet3d::_base_/default_runtime.py'
]
custom_imports = dict(imports=['ddml'], allow_failed_imports=False)

# Sizes are regressed as absolute sizes, as the release does (meanshape:
# False): zero means. For residuals to the class means (meanshape: True),
# set them to the release's cls_mean_size, (l, h, w) of Pedestrian, Cyclist,
# Car: ddml.models.heads.monodle_head.KITTI_MEAN_SIZES.
mean_sizes = ((0., 0., 0.), (0., 0., 0.), (0., 0., 0.))
img_scale = (1280, 384)

model = dict(
    type='MonoDLE',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='DLANet',
        depth=34,
        in_channels=3,
        norm_cfg=dict(type='BN'),
        init_cfg=dict(
            type='PretrainedDLA',
            checkpoint='http://dl.yf.io/dla/models/imagenet/dla34-ba72cf86.pth'
        )),
    neck=dict(
        type='MonoDLEDLAUp',
        in_channels=[16, 32, 64, 128, 256, 512],
        start_level=2,
        norm_cfg=dict(type='BN')),
    bbox_head=dict(
        type='MonoDLEHead',
        num_classes=3,
        in_channels=64,
        feat_channels=256,
        bbox_coder=dict(
            type='MonoDLECoder', mean_sizes=mean_sizes, num_heading_bins=12),
        min_depth=2.0,  # the release leaves out objects nearer than 2 m
        max_depth=65.0,  # and farther than 65 m
        skip_3d_on_affine_aug=True,
        skip_unknown_difficulty=True,  # the release's 'UnKnown' rule
        bbox2d_source='annotated'),  # bbox2d_type: 'anno'
    test_cfg=dict(topk=50, local_maximum_kernel=3, score_thr=0.2,
                  pred_2d=True))

train_pipeline = [
    dict(type='LoadImageFromFileMono3D'),
    dict(
        type='LoadAnnotations3D',
        with_bbox=True,
        with_label=True,
        with_attr_label=False,
        with_bbox_3d=True,
        with_label_3d=True,
        with_bbox_depth=True),
    # each object's KITTI difficulty and annotated 2D box, kept aligned
    # with the objects through flip, shift/scale and resize
    dict(type='LoadObjectDifficulty'),
    dict(type='LoadAnnotatedBoxes2D'),
    dict(type='RandomFlip3DKeepInstanceKeys', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', shift_scale=(0.2, 0.4), aug_prob=0.5),
    dict(
        type='AffineResizeKeepInstanceKeys', img_scale=img_scale,
        down_ratio=4),
    dict(
        type='Pack3DDetInputsWithDifficulty',
        keys=[
            'img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
            'gt_labels_3d', 'centers_2d', 'depths', 'gt_difficulty',
            'gt_bboxes_annotated'
        ]),
]
test_pipeline = [
    dict(type='LoadImageFromFileMono3D'),
    dict(type='AffineResize', img_scale=img_scale, down_ratio=4),
    dict(type='Pack3DDetInputs', keys=['img'])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(pipeline=train_pipeline, filter_empty_gt=False))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='KittiMono3DMetric', bbox2d_source='regressed')
test_evaluator = val_evaluator

max_epochs = 140
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# The optimizer's lr is the warm-up's start; the cosine schedule rises to
# eta_min = 1.25e-3 over epochs 0-5, lr(e) = 1e-5 + (1.25e-3 - 1e-5) *
# (1 - cos(pi e / 5)) / 2, the release's CosineWarmupLR.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-5, weight_decay=1e-5),
    paramwise_cfg=dict(bias_decay_mult=0.),
    clip_grad=None)
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=5,
        eta_min=1.25e-3,
        begin=0,
        end=6,
        by_epoch=True),
    dict(
        type='MultiStepLR',
        milestones=[95, 125],
        gamma=0.1,
        begin=0,
        end=max_epochs,
        by_epoch=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10))
randomness = dict(seed=444)
