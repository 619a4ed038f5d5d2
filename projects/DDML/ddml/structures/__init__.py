"""Geometry of mmdet3d's box structures shared by the models, the
evaluation and the test helpers."""
from .box_projection import project_boxes_to_image

__all__ = ['project_boxes_to_image']
