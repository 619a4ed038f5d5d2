"""Carry KITTI's per-object difficulty through a mono3d pipeline.

The releases' 'UnKnown' rule (``MonoDLEHead.skip_unknown_difficulty`` and
``min_difficulty`` of :class:`ddml.models.DepthDiscriminativeDetector`)
needs one difficulty code per ground-truth object in
``gt_instances_3d.difficulty``. mmdet3d 1.4 does not provide it on the
camera path: its converter writes ``difficulty`` into the LiDAR
``instances`` only and ``LoadAnnotations3D`` does not load it. The codes are
read from ``cam_instances[*]['difficulty']`` of the info files written by
``tools/create_data.py kitti`` (ddml's LiDAR-free converter; 0 easy,
1 moderate, 2 hard, -1 none, by MonoDLE's rule:
:func:`ddml.data_tools.kitti_converter.kitti_difficulty`):

.. code-block:: python

    dict(type='LoadAnnotations3D', ...),
    dict(type='LoadObjectDifficulty'),
    dict(type='RandomFlip3D', ...),
    dict(type='AffineResizeKeepInstanceKeys', img_scale=..., down_ratio=4),
    dict(type='Pack3DDetInputsWithDifficulty', keys=[..., 'gt_difficulty'])

The steps after the loader are in :mod:`.instance_keys`.
"""
import numpy as np

from mmdet3d.registry import TRANSFORMS
from .instance_keys import (DIFFICULTY_KEY, AffineResizeKeepInstanceKeys,
                            LoadInstanceField, Pack3DDetInputsWithDifficulty)

__all__ = [
    'DIFFICULTY_KEY', 'LoadObjectDifficulty', 'AffineResizeKeepInstanceKeys',
    'Pack3DDetInputsWithDifficulty'
]


@TRANSFORMS.register_module()
class LoadObjectDifficulty(LoadInstanceField):
    """Load each object's KITTI difficulty code into ``gt_difficulty``.

    Place it right after ``LoadAnnotations3D``: both read the same
    ``ann_info`` (the frame's ``cam_instances`` without DontCare), so the
    codes line up with ``gt_bboxes_3d``.

    Required keys: ``ann_info['difficulty']`` (when the frame has objects).
    Added keys: ``gt_difficulty`` (np.ndarray of int64, shape (N, )).
    """

    field = 'difficulty'
    key = DIFFICULTY_KEY
    dtype = np.int64
    since = 2
    shape = ()
    needed_by = ("set the wrapper's min_difficulty=None and MonoDLEHead's "
                 'skip_unknown_difficulty=False')
