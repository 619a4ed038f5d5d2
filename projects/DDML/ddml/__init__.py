"""ddml: depth-discriminative metric learning for MMDetection3D.

Importing this package registers every module of the add-on into
mmdet3d's registries (models, metrics, hooks, transforms).
"""
from . import datasets, engine, evaluation, models  # noqa: F401

__version__ = '0.1.0'
