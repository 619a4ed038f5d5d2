"""Evaluation: the CPU rotated IoU of KITTI's BEV/3D AP, KITTI's metric
with the regressed 2D boxes, and the Waymo metric (AP/APH/LET) without
TensorFlow."""
from .centre_distance_metric import CentreDistanceMetric
from .kitti_mono3d_metric import KittiMono3DMetric
from .rotated_iou import rbbox_corners, rotate_iou_cpu_eval
from .waymo_metric import CLASS_TO_WAYMO_TYPE, WaymoMono3DMetric

__all__ = [
    'rbbox_corners', 'rotate_iou_cpu_eval', 'CLASS_TO_WAYMO_TYPE',
    'WaymoMono3DMetric', 'CentreDistanceMetric', 'KittiMono3DMetric'
]
