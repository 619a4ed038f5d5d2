"""Carry each object's annotated 2D box through a mono3d pipeline.

mmdet3d's ``cam_instances[*]['bbox']``, which ``LoadAnnotations3D`` loads as
``gt_bboxes``, is the projection of the 3D box clipped to the image.
MonoDLE's and DDML's releases regress the *annotated* box (label_2's box,
their ``bbox2d_type: 'anno'``). ddml's converter keeps it beside the
projected one as ``cam_instances[*]['bbox_annotated']``;
:class:`LoadAnnotatedBoxes2D` loads it as ``gt_bboxes_annotated``, and
``RandomFlip3DKeepInstanceKeys``, ``AffineResizeKeepInstanceKeys`` and
``Pack3DDetInputsWithDifficulty`` (:mod:`.instance_keys`) flip, map, filter
and pack it into ``gt_instances.bboxes_annotated``, which
``MonoDLEHead(bbox2d_source='annotated')`` reads.
"""
import numpy as np

from mmdet3d.registry import TRANSFORMS
from .instance_keys import ANNOTATED_BOXES_KEY, LoadInstanceField

__all__ = ['ANNOTATED_BOXES_KEY', 'LoadAnnotatedBoxes2D']


@TRANSFORMS.register_module()
class LoadAnnotatedBoxes2D(LoadInstanceField):
    """Load each object's annotated 2D box into ``gt_bboxes_annotated``.

    Place it right after ``LoadAnnotations3D`` (the boxes then line up with
    ``gt_bboxes_3d``), and use ``RandomFlip3DKeepInstanceKeys`` and
    ``AffineResizeKeepInstanceKeys`` for the flip and the resize.

    Required keys: ``ann_info['bbox_annotated']`` (when the frame has
    objects). Added keys: ``gt_bboxes_annotated`` (np.ndarray of float32,
    shape (N, 4), ``x1, y1, x2, y2`` in pixels of the loaded image).
    """

    field = 'bbox_annotated'
    key = ANNOTATED_BOXES_KEY
    dtype = np.float32
    since = 3
    shape = (4, )
    needed_by = "set MonoDLEHead's bbox2d_source='projected'"
