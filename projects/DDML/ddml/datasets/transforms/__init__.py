"""Pipeline transforms (registered into mmdet3d's ``TRANSFORMS``)."""
from .object_difficulty import (DIFFICULTY_KEY, AffineResizeKeepInstanceKeys,
                                LoadObjectDifficulty,
                                Pack3DDetInputsWithDifficulty)

__all__ = [
    'DIFFICULTY_KEY', 'LoadObjectDifficulty', 'AffineResizeKeepInstanceKeys',
    'Pack3DDetInputsWithDifficulty'
]
