"""Pipeline transforms (registered into mmdet3d's ``TRANSFORMS``): each
object's KITTI difficulty and annotated 2D box, carried to the packed
sample."""
from .annotated_boxes import LoadAnnotatedBoxes2D
from .instance_keys import (ANNOTATED_BOXES_KEY, DIFFICULTY_KEY,
                            AffineResizeKeepInstanceKeys, LoadInstanceField,
                            Pack3DDetInputsWithDifficulty,
                            RandomFlip3DKeepInstanceKeys)
from .object_difficulty import LoadObjectDifficulty

__all__ = [
    'DIFFICULTY_KEY', 'ANNOTATED_BOXES_KEY', 'LoadInstanceField',
    'LoadObjectDifficulty', 'LoadAnnotatedBoxes2D',
    'RandomFlip3DKeepInstanceKeys', 'AffineResizeKeepInstanceKeys',
    'Pack3DDetInputsWithDifficulty'
]
