from .monodle_head import MonoDLEHead
from .object_depth_map_head import ObjectDepthMapHead, paint_object_depth_map

__all__ = ['ObjectDepthMapHead', 'paint_object_depth_map', 'MonoDLEHead']
