"""KITTI-format data tools: file I/O, the info converter (no LiDAR needed),
the synthetic KITTI-format renderer of the demo and its Waymo-format output
(mmdet3d's Waymo converter layout and infos)."""
from .kitti_converter import (KITTI_CAM_CLASSES, KITTI_CLASSES,
                              SPLIT_FOLDERS, box3d_corners_camera,
                              count_points_in_boxes, create_kitti_infos,
                              kitti_frame_info,
                              kitti_metainfo, project_to_image,
                              projected_box2d, split_image_prefix)
from .kitti_io import (CALIB_KEYS, KittiFormatError, KittiObject,
                       atomic_dump_pickle, atomic_write_bytes, format_calib,
                       format_label_line, read_calib_file,
                       read_imageset_file, read_label_file, write_label_file)
from .synthetic_kitti import (CAMERA_HEIGHT, CLASS_PRIORS, KITTI_IMAGE_SIZE,
                              KITTI_P2, RenderedFrame, SyntheticCamera,
                              kitti_camera, make_demo_dataset, render_frame)
from .synthetic_waymo import (WAYMO_CLASS_PRIORS, WAYMO_CLASSES,
                              WAYMO_IMAGE_SIZE, WAYMO_LAYOUT,
                              lidar_point_counts, make_waymo_dataset,
                              waymo_camera, waymo_data_prefix,
                              waymo_frame_info)

__all__ = [
    'KITTI_CAM_CLASSES', 'KITTI_CLASSES', 'SPLIT_FOLDERS',
    'split_image_prefix', 'box3d_corners_camera',
    'count_points_in_boxes', 'create_kitti_infos', 'kitti_frame_info',
    'kitti_metainfo', 'project_to_image', 'projected_box2d', 'CALIB_KEYS',
    'KittiFormatError', 'KittiObject', 'atomic_dump_pickle',
    'atomic_write_bytes', 'format_calib', 'format_label_line',
    'read_calib_file', 'read_imageset_file', 'read_label_file',
    'write_label_file', 'CAMERA_HEIGHT', 'CLASS_PRIORS', 'KITTI_IMAGE_SIZE',
    'KITTI_P2', 'RenderedFrame', 'SyntheticCamera', 'kitti_camera',
    'make_demo_dataset', 'render_frame', 'WAYMO_CLASS_PRIORS',
    'WAYMO_CLASSES', 'WAYMO_IMAGE_SIZE', 'WAYMO_LAYOUT', 'lidar_point_counts',
    'make_waymo_dataset', 'waymo_camera', 'waymo_data_prefix',
    'waymo_frame_info'
]
