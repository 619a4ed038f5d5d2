"""The method: object descriptors, targets, the wrapper detector, the
object depth map head and the metric losses; MonoDLE's release neck and
DLA-34 initialisation (registered into mmdet3d's MODELS and
WEIGHT_INITIALIZERS)."""
from .backbones import PretrainedDLAInit
from .descriptors import (ObjectDescriptors, centers_to_cells,
                          collect_object_descriptors,
                          gather_across_processes, gather_object_descriptors,
                          gather_pooled_at_cells, infer_feature_stride,
                          pool_descriptor_map, select_objects)
from .detectors import DepthDiscriminativeDetector
from .heads import ObjectDepthMapHead
from .losses import MultiRangeDepthMetricLoss, QuasiIsometricLoss
from .necks import MonoDLEDLAUp
from .targets import (collect_shifted_pairs, paint_batch_depth_targets,
                      paint_object_depth_map, sample_boxes_and_depths)

__all__ = [
    'ObjectDescriptors', 'centers_to_cells', 'collect_object_descriptors',
    'gather_across_processes', 'gather_object_descriptors',
    'gather_pooled_at_cells', 'infer_feature_stride', 'pool_descriptor_map',
    'select_objects', 'DepthDiscriminativeDetector', 'ObjectDepthMapHead',
    'MultiRangeDepthMetricLoss', 'QuasiIsometricLoss',
    'collect_shifted_pairs', 'paint_batch_depth_targets',
    'paint_object_depth_map', 'sample_boxes_and_depths', 'MonoDLEDLAUp',
    'PretrainedDLAInit'
]
