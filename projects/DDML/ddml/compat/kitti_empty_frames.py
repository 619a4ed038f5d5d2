"""Let mmdet3d 1.4's ``KittiDataset`` load frames without objects.

Upstream behaviour fixed: for a frame whose ``cam_instances`` are empty,
``KittiDataset.parse_ann_info`` (``load_type='fov_image_based'``) builds
``gt_bboxes_labels = np.array(0)``, a 0-d array, which ``_remove_dontcare``
then indexes with a boolean mask of length 0: ``IndexError``, raised while
the dataset parses its infos, so neither training nor evaluation starts.
Real KITTI and the synthetic demo data both have such frames.

The fix wraps ``KittiDataset._remove_dontcare`` so that, for an empty
frame, 0-d annotation arrays become empty 1-d arrays before the filtering;
every other frame is handled by mmdet3d's code unchanged.

When applied: always, by :func:`ddml.compat.apply_patches` (which
``import ddml`` calls); the wrapper changes nothing on a frame with
objects, so it is harmless on an mmdet3d that handles empty frames itself.
"""
import numpy as np
from mmdet3d.datasets import KittiDataset

__all__ = ['allow_empty_kitti_frames']


def allow_empty_kitti_frames() -> None:
    """Wrap ``KittiDataset._remove_dontcare`` (idempotent)."""
    original = KittiDataset._remove_dontcare
    if getattr(original, '_ddml_empty_frames', False):
        return

    def _remove_dontcare(self, ann_info: dict) -> dict:
        if len(ann_info['gt_labels_3d']) == 0:
            for key, value in ann_info.items():
                if isinstance(value, np.ndarray) and value.ndim == 0:
                    ann_info[key] = np.zeros(0, dtype=value.dtype)
        return original(self, ann_info)

    _remove_dontcare._ddml_empty_frames = True
    _remove_dontcare.__doc__ = original.__doc__
    KittiDataset._remove_dontcare = _remove_dontcare
