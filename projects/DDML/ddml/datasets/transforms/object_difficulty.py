"""Carry KITTI's per-object difficulty through a mono3d pipeline.

The release's second sample rule (``min_difficulty`` of
:class:`ddml.models.DepthDiscriminativeDetector`) needs one difficulty code
per ground-truth object in ``gt_instances_3d.difficulty``. mmdet3d 1.4 does
not provide it on the camera path: its converter writes ``difficulty`` into
the LiDAR ``instances`` only, ``LoadAnnotations3D`` does not load it,
``AffineResize`` drops objects whose centre leaves the image without
touching other per-object arrays, and ``Pack3DDetInputs`` refuses keys it
does not know. The three transforms here close those gaps:

.. code-block:: python

    dict(type='LoadAnnotations3D', ...),
    dict(type='LoadObjectDifficulty'),
    dict(type='RandomFlip3D', ...),
    dict(type='AffineResizeKeepInstanceKeys', img_scale=..., down_ratio=4),
    dict(type='Pack3DDetInputsWithDifficulty', keys=[..., 'gt_difficulty'])

The difficulty is read from ``cam_instances[*]['difficulty']`` of the info
files written by ``tools/create_data.py kitti`` (ddml's LiDAR-free converter;
codes as mmdet3d's: 0 easy, 1 moderate, 2 hard, -1 none).
"""
from typing import Sequence

import numpy as np

from mmdet3d.datasets.transforms import AffineResize, Pack3DDetInputs
from mmdet3d.registry import TRANSFORMS

__all__ = [
    'DIFFICULTY_KEY', 'LoadObjectDifficulty', 'AffineResizeKeepInstanceKeys',
    'Pack3DDetInputsWithDifficulty'
]

#: The results key the three transforms agree on (packed as
#: ``gt_instances_3d.difficulty``).
DIFFICULTY_KEY = 'gt_difficulty'


@TRANSFORMS.register_module()
class LoadObjectDifficulty:
    """Load each object's KITTI difficulty code into ``gt_difficulty``.

    Place it right after ``LoadAnnotations3D``: both read the same
    ``ann_info`` (the frame's ``cam_instances`` without DontCare), so the
    codes line up with ``gt_bboxes_3d``.

    Required keys: ``ann_info['difficulty']``. Added keys:
    ``gt_difficulty`` (np.ndarray of int64, shape (N, )).
    """

    def __call__(self, results: dict) -> dict:
        return self.transform(results)

    def transform(self, results: dict) -> dict:
        """Copy the codes.

        Args:
            results (dict): Pipeline results with ``ann_info``.

        Returns:
            dict: ``results`` with ``gt_difficulty``.

        Raises:
            KeyError: When the info has no per-object ``difficulty`` in its
                ``cam_instances`` (info files from mmdet3d's converter).
        """
        ann_info = results.get('ann_info') or {}
        if 'difficulty' not in ann_info:
            if 'gt_bboxes_3d' in ann_info and len(ann_info['gt_bboxes_3d']):
                raise KeyError(
                    f"LoadObjectDifficulty: the info of "
                    f"{results.get('img_path', 'this sample')} has no "
                    "'difficulty' in its cam_instances. mmdet3d's converter "
                    "does not write it; regenerate the info files with "
                    "ddml's converter (python tools/create_data.py kitti "
                    "--root-path <kitti_root>), or drop min_difficulty from "
                    "the model config.")
            codes = np.zeros(0, np.int64)
        else:
            codes = np.asarray(ann_info['difficulty'], np.int64).reshape(-1)
        results[DIFFICULTY_KEY] = codes
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


@TRANSFORMS.register_module()
class AffineResizeKeepInstanceKeys(AffineResize):
    """mmdet3d's ``AffineResize`` that also filters extra per-object keys.

    ``AffineResize`` drops the objects whose 2D centre leaves the output
    image from ``centers_2d``, the boxes, labels and ``depths``, but not
    from any other per-object array. This subclass runs it unchanged and
    applies the same selection to ``instance_keys``: it hands the parent
    the object indices in place of ``depths`` (which the parent only
    indexes) and reads back which survived.

    Args:
        instance_keys (Sequence[str]): Per-object arrays to keep aligned.
            Defaults to ``('gt_difficulty', )``.
        **kwargs: ``AffineResize``'s arguments (``img_scale``,
            ``down_ratio``, ``bbox_clip_border``).
    """

    def __init__(self,
                 instance_keys: Sequence[str] = (DIFFICULTY_KEY, ),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.instance_keys = tuple(instance_keys)

    def transform(self, results: dict) -> dict:
        """Affine-resize and keep ``instance_keys`` aligned.

        Args:
            results (dict): Pipeline results.

        Returns:
            dict: As ``AffineResize``, with ``instance_keys`` filtered like
            ``gt_bboxes_3d``.

        Raises:
            ValueError: When an instance key's length differs from the
                number of objects (``depths``).
        """
        keys = [k for k in self.instance_keys if k in results]
        if not keys or 'depths' not in results:
            return super().transform(results)
        depths = np.asarray(results['depths'])
        for k in keys:
            if len(results[k]) != len(depths):
                raise ValueError(
                    f'{type(self).__name__}: {k!r} has {len(results[k])} '
                    f'entries but the sample has {len(depths)} objects '
                    "('depths'); load it from the same ann_info, after "
                    'LoadAnnotations3D and before any transform that drops '
                    'objects')
        results['depths'] = np.arange(len(depths), dtype=np.float64)
        results = super().transform(results)
        kept = np.asarray(results['depths']).astype(np.int64)
        results['depths'] = depths[kept]
        for k in keys:
            results[k] = np.asarray(results[k])[kept]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(img_scale={self.img_scale}, '
                f'down_ratio={self.down_ratio}, '
                f'instance_keys={self.instance_keys})')


@TRANSFORMS.register_module()
class Pack3DDetInputsWithDifficulty(Pack3DDetInputs):
    """``Pack3DDetInputs`` that also packs ``gt_difficulty``.

    It goes to ``gt_instances_3d.difficulty`` (list it in ``keys``); all
    else is mmdet3d's packing.
    """

    INSTANCEDATA_3D_KEYS = Pack3DDetInputs.INSTANCEDATA_3D_KEYS + [
        DIFFICULTY_KEY
    ]
