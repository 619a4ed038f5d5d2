"""Carry extra per-object fields through a mono3d pipeline.

MonoDLE's and DDML's releases train with two per-object facts that
mmdet3d 1.4's camera pipeline does not carry: each object's KITTI
difficulty (their 'UnKnown' objects are background) and its *annotated* 2D
box (label_2's box; mmdet3d's ``cam_instances`` hold the clipped projection
of the 3D box). ddml's converter (``tools/create_data.py kitti``) writes both
into every ``cam_instances`` entry (``difficulty``, ``bbox_annotated``);
this module and its two loaders take them from there to the packed sample:

.. code-block:: python

    dict(type='LoadAnnotations3D', ...),
    dict(type='LoadObjectDifficulty'),          # -> gt_difficulty
    dict(type='LoadAnnotatedBoxes2D'),          # -> gt_bboxes_annotated
    dict(type='RandomFlip3DKeepInstanceKeys', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', ...),
    dict(type='AffineResizeKeepInstanceKeys', img_scale=..., down_ratio=4),
    dict(type='Pack3DDetInputsWithDifficulty',
         keys=[..., 'gt_difficulty', 'gt_bboxes_annotated'])

which packs ``gt_instances_3d.difficulty`` and
``gt_instances.bboxes_annotated``. What each step does that mmdet3d's does
not: ``RandomFlip3D`` flips ``gt_bboxes`` only; ``AffineResize`` maps
``gt_bboxes`` into the network input and drops the objects whose projected
centre leaves it, from its own keys only; ``Pack3DDetInputs`` refuses keys
it does not know.
"""
from typing import Sequence

import numpy as np
from mmcv.transforms import to_tensor

from mmdet3d.datasets.transforms import (AffineResize, Pack3DDetInputs,
                                         RandomFlip3D)
from mmdet3d.registry import TRANSFORMS

__all__ = [
    'DIFFICULTY_KEY', 'ANNOTATED_BOXES_KEY', 'LoadInstanceField',
    'RandomFlip3DKeepInstanceKeys', 'AffineResizeKeepInstanceKeys',
    'Pack3DDetInputsWithDifficulty'
]

#: Results key of each object's KITTI difficulty code (int64, (N, )),
#: packed as ``gt_instances_3d.difficulty``.
DIFFICULTY_KEY = 'gt_difficulty'
#: Results key of each object's annotated 2D box (float32, (N, 4), xyxy
#: px), packed as ``gt_instances.bboxes_annotated``.
ANNOTATED_BOXES_KEY = 'gt_bboxes_annotated'

#: Results key where :class:`RandomFlip3DKeepInstanceKeys` lists the box
#: keys it flips with the image (checked by
#: :class:`AffineResizeKeepInstanceKeys`).
_FLIPPED_BOX_KEYS = 'flipped_box_keys'

_CONVERTER = ('regenerate the info files with ddml\'s converter (python '
              'tools/create_data.py kitti --root-path <kitti_root>)')


class LoadInstanceField:
    """Copy one per-object field of ``ann_info`` into the results.

    Base of :class:`LoadObjectDifficulty` and :class:`LoadAnnotatedBoxes2D`;
    place them right after ``LoadAnnotations3D``, which reads the same
    ``ann_info`` (the frame's ``cam_instances`` without DontCare), so that
    the values line up with ``gt_bboxes_3d``.

    Subclasses set ``field`` (the ``cam_instances`` key), ``key`` (the
    results key), ``dtype``, ``shape`` (per object), ``since`` (the
    converter's first ``INFO_VERSION`` with the field) and ``needed_by``
    (what to turn off instead, for the error message).
    """

    field: str = ''
    key: str = ''
    dtype: type = np.float32
    shape: tuple = ()
    since: int = 0
    needed_by: str = ''

    def __call__(self, results: dict) -> dict:
        return self.transform(results)

    def transform(self, results: dict) -> dict:
        """Copy the field.

        Args:
            results (dict): Pipeline results with ``ann_info``.

        Returns:
            dict: ``results`` with ``key`` (np.ndarray, shape
            ``(N, ) + shape``).

        Raises:
            KeyError: When a frame with objects has no such field in its
                ``cam_instances`` (info files of mmdet3d's converter or of
                an older ddml converter).
        """
        ann_info = results.get('ann_info') or {}
        if self.field not in ann_info:
            if 'gt_bboxes_3d' in ann_info and len(ann_info['gt_bboxes_3d']):
                raise KeyError(
                    f"{type(self).__name__}: the info of "
                    f"{results.get('img_path', 'this sample')} has no "
                    f"{self.field!r} in its cam_instances (mmdet3d's "
                    "converter does not write it, ddml's writes it since "
                    f"INFO_VERSION {self.since}); {_CONVERTER}, or "
                    f"{self.needed_by}.")
            values = np.zeros((0, ) + self.shape, self.dtype)
        else:
            values = np.asarray(ann_info[self.field], self.dtype).reshape(
                (-1, ) + self.shape)
        results[self.key] = values
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


@TRANSFORMS.register_module()
class RandomFlip3DKeepInstanceKeys(RandomFlip3D):
    """mmdet3d's ``RandomFlip3D`` that also flips extra 2D box arrays.

    When the image is flipped, every array of ``box_keys`` present in the
    results is flipped like ``gt_bboxes`` (horizontally: ``x1' = W - x2``,
    ``x2' = W - x1``); all else is ``RandomFlip3D``.

    Args:
        box_keys (Sequence[str]): (N, 4) xyxy box arrays to flip. Defaults
            to ``('gt_bboxes_annotated', )``.
        **kwargs: ``RandomFlip3D``'s arguments.
    """

    def __init__(self,
                 box_keys: Sequence[str] = (ANNOTATED_BOXES_KEY, ),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.box_keys = tuple(box_keys)

    def transform(self, input_dict: dict) -> dict:
        """``RandomFlip3D.transform``, also flipping ``box_keys``.

        Args:
            input_dict (dict): Pipeline results.

        Returns:
            dict: As ``RandomFlip3D``; the arrays of ``box_keys`` flipped
            when the image was.
        """
        input_dict[_FLIPPED_BOX_KEYS] = self.box_keys
        return super().transform(input_dict)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        img_shape = results['img'].shape[:2]
        for key in self.box_keys:
            if key in results:
                results[key] = self._flip_bbox(
                    np.asarray(results[key]), img_shape,
                    results['flip_direction'])

    def __repr__(self) -> str:
        return super().__repr__() + f'(box_keys={self.box_keys})'


@TRANSFORMS.register_module()
class AffineResizeKeepInstanceKeys(AffineResize):
    """mmdet3d's ``AffineResize`` that also maps and filters extra keys.

    ``AffineResize`` maps ``gt_bboxes`` into the network input and drops
    the objects whose 2D centre leaves it from ``centers_2d``, the boxes,
    labels and ``depths``, but from no other per-object array. This
    subclass runs it unchanged and applies the same selection to
    ``instance_keys`` and ``box_keys``: it hands the parent the object
    indices in place of ``depths`` (which the parent only indexes) and
    reads back which survived. The arrays of ``box_keys`` are also mapped
    by the same affine transform as ``gt_bboxes``, corner by corner.

    Args:
        instance_keys (Sequence[str]): Per-object arrays to keep aligned.
            Defaults to ``('gt_difficulty', )``.
        box_keys (Sequence[str]): (N, 4) xyxy box arrays to map and keep
            aligned. Defaults to ``('gt_bboxes_annotated', )``.
        clip_box_keys (bool): Clip the mapped ``box_keys`` to the input
            image as ``bbox_clip_border`` clips ``gt_bboxes``. Defaults to
            False: MonoDLE's release maps its 2D boxes without clipping
            (``lib/datasets/kitti/kitti_dataset.py:206-212``), so a box
            that a random shift or scale pushes partly out of the image
            keeps its full size.
        **kwargs: ``AffineResize``'s arguments (``img_scale``,
            ``down_ratio``, ``bbox_clip_border``).
    """

    def __init__(self,
                 instance_keys: Sequence[str] = (DIFFICULTY_KEY, ),
                 box_keys: Sequence[str] = (ANNOTATED_BOXES_KEY, ),
                 clip_box_keys: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.instance_keys = tuple(instance_keys)
        self.box_keys = tuple(box_keys)
        self.clip_box_keys = bool(clip_box_keys)

    def transform(self, results: dict) -> dict:
        """Affine-resize, map ``box_keys`` and keep every key aligned.

        Args:
            results (dict): Pipeline results.

        Returns:
            dict: As ``AffineResize``, with ``instance_keys`` and
            ``box_keys`` filtered like ``gt_bboxes_3d`` and ``box_keys`` in
            input pixels.

        Raises:
            ValueError: When a key's length differs from the number of
                objects (``depths``), the sample has no ``depths``, or the
                image was flipped without ``box_keys``.
        """
        keys = [k for k in self.instance_keys + self.box_keys
                if k in results]
        if not keys:
            return super().transform(results)
        if 'depths' not in results:
            raise ValueError(
                f'{type(self).__name__} keeps {keys} aligned through the '
                "objects' depths, which this sample lacks; load them with "
                'LoadAnnotations3D(with_bbox_depth=True)')
        depths = np.asarray(results['depths'])
        for k in keys:
            if k in self.box_keys and results.get('flip', False) and \
                    k not in results.get(_FLIPPED_BOX_KEYS, ()):
                raise ValueError(
                    f'{type(self).__name__}: the image was flipped but '
                    f'{k!r} was not; use RandomFlip3DKeepInstanceKeys '
                    f'(box_keys including {k!r}) in place of RandomFlip3D')
            if len(results[k]) != len(depths):
                raise ValueError(
                    f'{type(self).__name__}: {k!r} has {len(results[k])} '
                    f'entries but the sample has {len(depths)} objects '
                    "('depths'); load it from the same ann_info, after "
                    'LoadAnnotations3D and before any transform that drops '
                    'objects')
        matrix = self._input_matrix(results)
        results['depths'] = np.arange(len(depths), dtype=np.float64)
        results = super().transform(results)
        kept = np.asarray(results['depths']).astype(np.int64)
        results['depths'] = depths[kept]
        for k in keys:
            values = np.asarray(results[k])[kept]
            if k in self.box_keys:
                values = self._map_boxes(values, matrix)
            results[k] = values
        return results

    def _input_matrix(self, results: dict) -> np.ndarray:
        """The 3x3 matrix ``AffineResize.transform`` applies to the image
        and ``gt_bboxes``: from ``RandomShiftScale``'s ``center`` and
        ``size`` when it ran, else from the whole image."""
        if 'center' in results:
            center, size = results['center'], results['size']
        else:
            height, width = results['img'].shape[:2]
            center = np.array([width / 2, height / 2], dtype=np.float32)
            size = np.array([width, height], dtype=np.float32)
        return self._get_transform_matrix(center, size, self.img_scale)

    def _map_boxes(self, boxes: np.ndarray,
                   matrix: np.ndarray) -> np.ndarray:
        """Map (N, 4) xyxy boxes by ``matrix`` (as ``gt_bboxes``)."""
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return boxes
        boxes[:, :2] = self._affine_transform(boxes[:, :2], matrix)
        boxes[:, 2:] = self._affine_transform(boxes[:, 2:], matrix)
        if self.clip_box_keys:
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, self.img_scale[0] - 1)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, self.img_scale[1] - 1)
        return boxes

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(img_scale={self.img_scale}, '
                f'down_ratio={self.down_ratio}, '
                f'instance_keys={self.instance_keys}, '
                f'box_keys={self.box_keys}, '
                f'clip_box_keys={self.clip_box_keys})')


@TRANSFORMS.register_module()
class Pack3DDetInputsWithDifficulty(Pack3DDetInputs):
    """``Pack3DDetInputs`` that also packs ddml's per-object keys (the
    difficulty first, hence the name; the ``ddml-release_*`` configs use
    it).

    ``gt_difficulty`` goes to ``gt_instances_3d.difficulty`` (int64
    tensor, (N, )) and ``gt_bboxes_annotated`` to
    ``gt_instances.bboxes_annotated`` (float32 tensor, (N, 4)); list them
    in ``keys``. All else is mmdet3d's packing.
    """

    INSTANCEDATA_3D_KEYS = Pack3DDetInputs.INSTANCEDATA_3D_KEYS + [
        DIFFICULTY_KEY
    ]
    INSTANCEDATA_2D_KEYS = Pack3DDetInputs.INSTANCEDATA_2D_KEYS + [
        ANNOTATED_BOXES_KEY
    ]

    def pack_single_results(self, results: dict) -> dict:
        """mmdet3d's packing, with ddml's keys as tensors (mmdet3d turns
        only its own keys into tensors)."""
        for key in (DIFFICULTY_KEY, ANNOTATED_BOXES_KEY):
            if key in results and not isinstance(results[key], list):
                results[key] = to_tensor(np.asarray(results[key]))
        return super().pack_single_results(results)
