"""Heads registered into mmdet3d's MODELS."""
from .monodle_head import MonoDLEHead
from .object_depth_map_head import ObjectDepthMapHead

__all__ = ['ObjectDepthMapHead', 'MonoDLEHead']
