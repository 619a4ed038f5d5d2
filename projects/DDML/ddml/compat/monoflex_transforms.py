"""Keep truncated objects through mmdet3d 1.4's ``AffineResize``.

Upstream behaviour fixed: ``AffineResize`` drops every object whose
projected 3D centre (``centers_2d``) leaves the network input, and
``MonoFlexHead.get_targets`` drops them again (``filter_outside_objs=True``,
mmdet3d's ``filter_outside_objs``). MonoFlex exists for exactly those
objects: it represents a truncated object by the intersection of the image
border with the line from its projected centre to its 2D box centre, draws
a one-dimensional heatmap there, predicts the remaining offset through the
edge-fusion module and trains it with a separate log-L1 loss (Zhang et al.,
CVPR 2021, Sec. 3.2; release zhangyp15/MonoFlex ``runs/monoflex.yaml``:
``CONSIDER_OUTSIDE_OBJS: True``). With mmdet3d's pipeline none of this ever
sees a training object (open-mmlab/mmdetection3d #1273 and #2093 ask for the
config that would have shown it).

:class:`AffineResizeKeepTruncated` (registered ``AffineResizeKeepTruncated``)
is ``AffineResize`` except for that selection: an object is kept when its
projected centre lies in the input *or* its (clipped) 2D box has a positive
width and height there, and it lies in front of the camera. Extra
per-object arrays (``instance_keys``, e.g. ``gt_difficulty`` of
``LoadObjectDifficulty``) are kept aligned, as
:class:`ddml.datasets.transforms.AffineResizeKeepInstanceKeys` does.

When applied: registered at ``import ddml``; configs opt in by naming it in
place of ``AffineResize`` (configs/monoflex/ and the MonoFlex demo configs
do). Its name starts with ``AffineResize`` because it writes the same
``affine_aug``/``trans_mat`` marks.
"""
from typing import Sequence

import cv2
import numpy as np

from mmdet3d.datasets.transforms import AffineResize
from mmdet3d.registry import TRANSFORMS

__all__ = ['AffineResizeKeepTruncated']

# per-object arrays AffineResize itself filters
_OBJECT_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_labels_3d', 'depths',
                'centers_2d')


@TRANSFORMS.register_module()
class AffineResizeKeepTruncated(AffineResize):
    """``AffineResize`` that keeps objects whose projected centre leaves
    the input while their 2D box does not (see the module docstring).

    Args:
        instance_keys (Sequence[str]): Further per-object arrays to keep
            aligned. Defaults to ``('gt_difficulty', )``.
        min_box_size (float): Smallest width and height, input pixels, of
            the clipped 2D box of a kept truncated object. Defaults to 1.
        **kwargs: ``AffineResize``'s arguments (``img_scale``,
            ``down_ratio``, ``bbox_clip_border``).
    """

    def __init__(self,
                 instance_keys: Sequence[str] = ('gt_difficulty', ),
                 min_box_size: float = 1.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.instance_keys = tuple(instance_keys)
        self.min_box_size = float(min_box_size)

    def transform(self, results: dict) -> dict:
        """Warp the image, map boxes and centres, keep the visible objects.

        Args:
            results (dict): Pipeline results.

        Returns:
            dict: As ``AffineResize`` (``img``, ``img_shape``,
            ``pad_shape``, ``trans_mat``, ``affine_aug``), with the objects
            selected as described in the module docstring.
        """
        img = results['img']
        if 'center' not in results:
            height, width = img.shape[:2]
            center = np.array([width / 2, height / 2], dtype=np.float32)
            size = np.array([width, height], dtype=np.float32)
            results['affine_aug'] = False
        else:
            center, size = results['center'], results['size']
        matrix = self._get_transform_matrix(center, size, self.img_scale)
        img = cv2.warpAffine(img, matrix[:2, :], self.img_scale)
        if isinstance(self.down_ratio, tuple):
            trans_mat = [
                self._get_transform_matrix(
                    center, size,
                    (self.img_scale[0] // r, self.img_scale[1] // r))
                for r in self.down_ratio
            ]
        else:
            trans_mat = self._get_transform_matrix(
                center, size, (self.img_scale[0] // self.down_ratio,
                               self.img_scale[1] // self.down_ratio))
        results['img'] = img
        results['img_shape'] = img.shape
        results['pad_shape'] = img.shape
        results['trans_mat'] = trans_mat
        if 'gt_bboxes' in results:
            self._affine_bboxes(results, matrix)
        if 'centers_2d' not in results:
            return results

        centers = self._affine_transform(
            np.asarray(results['centers_2d'], dtype=np.float64).reshape(
                -1, 2), matrix)
        width, height = self.img_scale
        keep = (centers[:, 0] > 0) & (centers[:, 0] < width) & \
            (centers[:, 1] > 0) & (centers[:, 1] < height)
        if 'gt_bboxes' in results:
            boxes = np.asarray(results['gt_bboxes']).reshape(-1, 4)
            box_w = np.minimum(boxes[:, 2], width - 1) - np.maximum(
                boxes[:, 0], 0)
            box_h = np.minimum(boxes[:, 3], height - 1) - np.maximum(
                boxes[:, 1], 0)
            keep |= (box_w >= self.min_box_size) & \
                (box_h >= self.min_box_size)
        if 'depths' in results:
            keep &= np.asarray(results['depths']).reshape(-1) > 0
        results['centers_2d'] = centers[keep].astype(np.float32)
        for key in _OBJECT_KEYS[:-1]:
            if key in results:
                results[key] = results[key][keep]
        if 'gt_bboxes_3d' in results:
            results['gt_bboxes_3d'].tensor = \
                results['gt_bboxes_3d'].tensor[keep]
        for key in self.instance_keys:
            if key not in results:
                continue
            values = np.asarray(results[key])
            if len(values) != len(keep):
                raise ValueError(
                    f'{type(self).__name__}: {key!r} has {len(values)} '
                    f'entries but the sample has {len(keep)} objects; load '
                    'it from the same ann_info before any transform that '
                    'drops objects')
            results[key] = values[keep]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(img_scale={self.img_scale}, '
                f'down_ratio={self.down_ratio}, '
                f'instance_keys={self.instance_keys}, '
                f'min_box_size={self.min_box_size})')
