"""Synthetic KITTI annotations for timing mmdet3d's KITTI evaluation.

Ground truth and detections of KITTI-sized frames in the format
``kitti_eval`` reads (one dict of arrays per frame), with KITTI's camera
(:data:`ddml.data_tools.KITTI_P2`) and the class priors of the synthetic
dataset (:data:`ddml.data_tools.CLASS_PRIORS`); 2D boxes are the
projected 3D boxes (:func:`ddml.structures.project_boxes_to_image`).
"""
from typing import Dict, List, Tuple

import numpy as np

from ..data_tools.kitti_converter import box3d_corners_camera
from ..data_tools.synthetic_kitti import (CLASS_PRIORS, KITTI_IMAGE_SIZE,
                                          KITTI_P2)
from ..structures import project_boxes_to_image

__all__ = ['KITTI_EVAL_CLASSES', 'synthetic_kitti_annos']

#: The classes of the annotations, in label order.
KITTI_EVAL_CLASSES = ('Car', 'Pedestrian', 'Cyclist')
_DIMS = np.array([CLASS_PRIORS[c]['size'] for c in KITTI_EVAL_CLASSES])
_PROBS = np.array([CLASS_PRIORS[c]['p'] for c in KITTI_EVAL_CLASSES])


def _anno(labels: np.ndarray, loc: np.ndarray, dims: np.ndarray,
          rot_y: np.ndarray, score: np.ndarray, rng: np.random.Generator,
          is_gt: bool) -> Dict[str, np.ndarray]:
    """A KITTI anno dict (as ``kitti_eval`` expects) of M objects.

    Args:
        labels (np.ndarray): (M,) indices into the classes.
        loc (np.ndarray): (M, 3) bottom centres in camera coordinates, m.
        dims (np.ndarray): (M, 3) sizes ``l, h, w`` in metres.
        rot_y (np.ndarray): (M,) yaw around the camera Y axis, radians.
        score (np.ndarray): (M,) detection scores (zeros for ground truth).
        rng (np.random.Generator): Source of truncation and occlusion.
        is_gt (bool): Ground truth gets random truncation and occlusion.

    Returns:
        dict[str, np.ndarray]: ``name``, ``truncated``, ``occluded``,
        ``alpha``, ``bbox`` (image-clipped), ``dimensions`` (l, h, w),
        ``location``, ``rotation_y``, ``score``.
    """
    m = len(labels)
    width, height = KITTI_IMAGE_SIZE
    corners = box3d_corners_camera(loc, dims, rot_y)
    bbox = project_boxes_to_image(
        corners, KITTI_P2, img_shape=(height, width),
        behind='keep').double().numpy()
    return dict(
        name=np.array([KITTI_EVAL_CLASSES[i] for i in labels],
                      dtype='<U10'),
        truncated=np.zeros(m) if not is_gt else rng.choice(
            [0.0, 0.0, 0.0, 0.2, 0.4], m),
        occluded=np.zeros(m, dtype=np.int64) if not is_gt else rng.integers(
            0, 3, m),
        alpha=rot_y - np.arctan2(loc[:, 0], loc[:, 2]),
        bbox=bbox,
        dimensions=dims,
        location=loc,
        rotation_y=rot_y,
        score=score)


def synthetic_kitti_annos(num_frames: int, num_gt: int, num_det: int,
                          seed: int) -> Tuple[List[dict], List[dict]]:
    """Synthetic ground truth and detections of ``num_frames`` frames.

    Every ground-truth object (5 to 60 m ahead, standing on the ground) is
    detected with probability 0.9 by a copy whose depth error grows with
    distance (sigma 3% of z), with smaller lateral, size and yaw errors;
    the remaining detections are false positives at random places. Scores
    are higher for better detections.

    Args:
        num_frames (int): Number of frames (KITTI val: 3,769).
        num_gt (int): Ground-truth objects per frame.
        num_det (int): Detections per frame (at least the hits).
        seed (int): Seed of the generator.

    Returns:
        tuple[list[dict], list[dict]]: ``gt_annos`` and ``dt_annos``, one
        anno dict per frame.
    """
    rng = np.random.default_rng(seed)
    gt_annos, dt_annos = [], []
    for _ in range(num_frames):
        labels = rng.choice(3, num_gt, p=_PROBS)
        dims = _DIMS[labels] * rng.uniform(0.85, 1.15, (num_gt, 3))
        z = rng.uniform(5.0, 60.0, num_gt)
        loc = np.stack([
            rng.uniform(-0.45, 0.45, num_gt) * z,
            rng.normal(1.65, 0.1, num_gt), z
        ], 1)
        rot_y = rng.uniform(-np.pi, np.pi, num_gt)
        gt_annos.append(
            _anno(labels, loc, dims, rot_y, np.zeros(num_gt), rng, True))

        hit = rng.random(num_gt) < 0.9
        n_hit = int(hit.sum())
        n_fp = max(num_det - n_hit, 0)
        noise = rng.normal(size=(n_hit, 3)) * np.stack(
            [0.01 * z[hit], 0.02 * np.ones(n_hit), 0.03 * z[hit]], 1)
        d_loc = loc[hit] + noise
        d_dims = dims[hit] * rng.normal(1.0, 0.05, (n_hit, 3))
        d_rot = rot_y[hit] + rng.normal(0, 0.1, n_hit)
        err = np.abs(noise[:, 2]) / z[hit]
        d_score = np.clip(1.0 - 5 * err + rng.normal(0, 0.05, n_hit), 0.05,
                          1.0)
        fp_labels = rng.choice(3, n_fp, p=_PROBS)
        fp_z = rng.uniform(5.0, 60.0, n_fp)
        fp_loc = np.stack([
            rng.uniform(-0.45, 0.45, n_fp) * fp_z,
            rng.normal(1.65, 0.1, n_fp), fp_z
        ], 1)
        dt_annos.append(
            _anno(
                np.concatenate([labels[hit], fp_labels]),
                np.concatenate([d_loc, fp_loc]),
                np.concatenate([d_dims, _DIMS[fp_labels]]),
                np.concatenate([d_rot,
                                rng.uniform(-np.pi, np.pi, n_fp)]),
                np.concatenate([d_score,
                                rng.uniform(0.05, 0.6, n_fp)]), rng, False))
    return gt_annos, dt_annos
