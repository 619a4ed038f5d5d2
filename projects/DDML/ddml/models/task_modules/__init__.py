"""Box coders of the detectors in this package (mmdet3d's TASK_UTILS)."""
from .monodle_bbox_coder import MonoDLECoder

__all__ = ['MonoDLECoder']
