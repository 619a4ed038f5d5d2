# FCOS3D on KITTI (3 classes). mmdet3d ships FCOS3D for nuScenes only; this
# is its model on mmdet3d's KITTI mono3d data set-up: 7-dim boxes (no
# velocity, no attributes), KITTI classes, and the nuScenes schedule.
_base_ = [
    'mmdet3d::_base_/datasets/kitti-mono3d.py',
    '../_base_/models/fcos3d-7dim.py',
    'mmdet3d::_base_/schedules/mmdet-schedule-1x.py',
    'mmdet3d::_base_/default_runtime.py'
]
custom_imports = dict(imports=['ddml'], allow_failed_imports=False)

# the same augmentation as mmdet3d's PGD KITTI config
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
    dict(type='mmdet.Resize', scale=(1242, 375), keep_ratio=True),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(
        type='Pack3DDetInputs',
        keys=[
            'img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
            'gt_labels_3d', 'centers_2d', 'depths'
        ]),
]
test_pipeline = [
    dict(type='LoadImageFromFileMono3D'),
    dict(type='mmdet.Resize', scale_factor=1.0),
    dict(type='Pack3DDetInputs', keys=['img'])
]
train_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# nuScenes FCOS3D's optimisation, for 12 epochs
optim_wrapper = dict(
    optimizer=dict(lr=0.002),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0 / 3,
        by_epoch=False,
        begin=0,
        end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
train_cfg = dict(max_epochs=12, val_interval=2)
auto_scale_lr = dict(base_batch_size=16)
