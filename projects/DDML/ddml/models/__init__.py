"""The method: object descriptors, the wrapper detector, the object depth
map head and the metric losses (registered into mmdet3d's MODELS)."""
from .descriptors import (ObjectDescriptors, centers_to_cells,
                          collect_object_descriptors,
                          gather_across_processes, gather_object_descriptors,
                          gather_pooled_at_cells, infer_feature_stride,
                          pool_descriptor_map, select_objects)
from .detectors import DepthDiscriminativeDetector
from .heads import ObjectDepthMapHead, paint_object_depth_map
from .losses import (MultiRangeDepthMetricLoss, QuasiIsometricLoss,
                     collect_shifted_pairs)

__all__ = [
    'ObjectDescriptors', 'centers_to_cells', 'collect_object_descriptors',
    'gather_across_processes', 'gather_object_descriptors',
    'gather_pooled_at_cells', 'infer_feature_stride', 'pool_descriptor_map',
    'select_objects', 'DepthDiscriminativeDetector', 'ObjectDepthMapHead',
    'paint_object_depth_map', 'MultiRangeDepthMetricLoss',
    'QuasiIsometricLoss', 'collect_shifted_pairs'
]
