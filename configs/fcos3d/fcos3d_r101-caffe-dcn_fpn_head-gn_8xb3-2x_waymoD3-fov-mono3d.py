# FCOS3D on Waymo's front camera (3 classes, every 3rd frame). mmdet3d ships
# FCOS3D for nuScenes only; this is its model on mmdet3d's waymoD3-fov data
# set-up with 7-dim boxes, and the schedule of mmdet3d's PGD Waymo config.
# Evaluation: ddml's WaymoMono3DMetric (no TensorFlow, no bazel binary).
_base_ = [
    'mmdet3d::_base_/datasets/waymoD3-fov-mono3d-3class.py',
    'mmdet3d::_base_/models/fcos3d.py',
    'mmdet3d::_base_/schedules/mmdet-schedule-1x.py',
    'mmdet3d::_base_/default_runtime.py'
]
custom_imports = dict(imports=['ddml'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[103.530, 116.280, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, False, True, True)),
    bbox_head=dict(
        num_classes=3,
        bbox_code_size=7,
        pred_attrs=False,
        pred_velo=False,
        group_reg_dims=(2, 1, 3, 1),  # offset, depth, size, rot
        reg_branch=(
            (256, ),  # offset
            (256, ),  # depth
            (256, ),  # size
            (256, )  # rot
        ),
        bbox_coder=dict(type='FCOS3DBBoxCoder', code_size=7)),
    train_cfg=dict(code_weight=[1.0, 1.0, 0.2, 1.0, 1.0, 1.0, 1.0]),
    test_cfg=dict(nms_pre=100, nms_thr=0.05, score_thr=0.001, max_per_img=20))

data_root = 'data/waymo/kitti_format/'
val_evaluator = dict(
    _delete_=True,
    type='WaymoMono3DMetric',
    ann_file=data_root + 'waymo_infos_val.pkl',
    load_type='fov_image_based',
    cam_key='CAM_FRONT',
    info_classes=('Car', 'Pedestrian', 'Cyclist'),
    metrics=('3d', 'let'),
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
