# PGD on Waymo's front camera (3 classes, every 3rd frame), from mmdet3d's
# waymoD3-fov config. Its WaymoMetric needs the Waymo devkit (TensorFlow)
# and a bazel-built binary; this config evaluates with ddml's
# WaymoMono3DMetric instead (AP/APH L1/L2, ranges, LET-3D-AP/APL/APH in
# numpy). mmdet3d's WaymoMetric stays selectable with
# --cfg-options test_evaluator.type=WaymoMetric ... for users with the binary.
_base_ = [
    'mmdet3d::pgd/pgd_r101_fpn_gn-head_dcn_8xb3-2x_waymoD3-fov-mono3d.py'
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
