# FCOS3D on Waymo's front camera (3 classes, every 3rd frame). mmdet3d ships
# FCOS3D for nuScenes only; this is its model on mmdet3d's waymoD3-fov data
# set-up with 7-dim boxes, and the schedule of mmdet3d's PGD Waymo config.
# Evaluation: ddml's WaymoMono3DMetric (no TensorFlow, no bazel binary).
_base_ = [
    'mmdet3d::_base_/datasets/waymoD3-fov-mono3d-3class.py',
    '../_base_/models/fcos3d-7dim.py',
    'mmdet3d::_base_/schedules/mmdet-schedule-1x.py',
    'mmdet3d::_base_/default_runtime.py'
]
custom_imports = dict(imports=['ddml'], allow_failed_imports=False)

data_root = 'data/waymo/kitti_format/'
val_evaluator = dict(
    _delete_=True,
    type='WaymoMono3DMetric',
    ann_file=data_root + 'waymo_infos_val.pkl',
    load_type='fov_image_based',
    cam_key='CAM_FRONT',
    info_classes=('Car', 'Pedestrian', 'Cyclist'),
    let_levels=(2, ),
    collect_device='cpu')
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.008),
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
        end=24,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=24, val_interval=24)
auto_scale_lr = dict(enable=False, base_batch_size=48)
