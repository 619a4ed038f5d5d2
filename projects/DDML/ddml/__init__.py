"""ddml: depth-discriminative metric learning for MMDetection3D.

Importing this package applies the compatibility fixes of
:mod:`ddml.compat` (:func:`ddml.compat.apply_patches`) and registers every
module of the add-on into mmdet3d's registries (models, metrics,
pipeline transforms).
"""
from . import compat, data_tools, datasets, engine, evaluation, models

__version__ = '0.1.0'

__all__ = [
    'compat', 'data_tools', 'datasets', 'engine', 'evaluation', 'models'
]

compat.apply_patches()
