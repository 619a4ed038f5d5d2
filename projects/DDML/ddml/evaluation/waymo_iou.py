"""Exact IoU of rotated 3D boxes in Waymo's box convention, in numpy/numba.

Boxes are ``(center_x, center_y, center_z, length, width, height, heading)``
in metres and radians, in a right-handed frame with z up (Waymo's vehicle
frame, which is mmdet3d's Waymo "LiDAR" frame), ``center_z`` being the
*gravity* centre and ``heading`` the angle of the length axis from +x,
counter-clockwise.  The box may rotate about z only.

The IoU follows the definition of Waymo's devkit
(``waymo_open_dataset/metrics/iou.cc``, ``ComputeIoU3d``): the exact area of
the intersection of the two bird's-eye-view rectangles, times the overlap of
the closed height intervals, divided by the union volume.  The degenerate
cases are treated as the devkit does: any dimension ``<= 1e-2`` or
``>= 1e6`` gives IoU 0, a union ``<= 1e-6`` gives 0, the result is clamped
to ``[0, 1]``.

The rectangle intersection is the exact Sutherland-Hodgman clipping of the
KITTI CPU IoU (:func:`ddml.evaluation.rotated_iou._intersection_area`),
compiled with numba (a dependency of mmdet3d).
"""
import math

import numba
import numpy as np

from .rotated_iou import _MAX_VERTICES, _intersection_area

__all__ = ['box3d_iou', 'box3d_iou_matrix', 'bev_corners']

_MIN_BOX_DIM = 1e-2
_MAX_BOX_DIM = 1e6
_EPS = 1e-6

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _corners(cx, cy, length, width, heading, out):
    """Writes the 4 BEV corners (counter-clockwise) of a box into ``out``."""
    c = math.cos(heading)
    s = math.sin(heading)
    hl = 0.5 * length
    hw = 0.5 * width
    # (+l, -w), (+l, +w), (-l, +w), (-l, -w) in the box frame: CCW.
    signs_l = (1.0, 1.0, -1.0, -1.0)
    signs_w = (-1.0, 1.0, 1.0, -1.0)
    for i in range(4):
        dl = signs_l[i] * hl
        dw = signs_w[i] * hw
        out[i, 0] = cx + dl * c - dw * s
        out[i, 1] = cy + dl * s + dw * c


@_jit
def _iou_pair(b1, b2, c1, c2, buf_in, buf_out):
    """IoU of two boxes given as length-7 arrays (see module docstring)."""
    for k in range(3, 6):
        if b1[k] >= _MAX_BOX_DIM or b2[k] >= _MAX_BOX_DIM:
            return 0.0
        if b1[k] <= _MIN_BOX_DIM or b2[k] <= _MIN_BOX_DIM:
            return 0.0
    z_lo = max(b1[2] - 0.5 * b1[5], b2[2] - 0.5 * b2[5])
    z_hi = min(b1[2] + 0.5 * b1[5], b2[2] + 0.5 * b2[5])
    if z_lo > z_hi:
        return 0.0
    # Cheap rejection: circumscribed circles do not touch.
    dx = b1[0] - b2[0]
    dy = b1[1] - b2[1]
    r1 = 0.5 * math.sqrt(b1[3] * b1[3] + b1[4] * b1[4])
    r2 = 0.5 * math.sqrt(b2[3] * b2[3] + b2[4] * b2[4])
    if dx * dx + dy * dy > (r1 + r2) * (r1 + r2):
        return 0.0
    _corners(b1[0], b1[1], b1[3], b1[4], b1[6], c1)
    _corners(b2[0], b2[1], b2[3], b2[4], b2[6], c2)
    # the corners are counter-clockwise: clip orientation +1
    inter = _intersection_area(c1, c2, 1.0, buf_in, buf_out) * (z_hi - z_lo)
    union = b1[3] * b1[4] * b1[5] + b2[3] * b2[4] * b2[5] - inter
    if union <= _EPS:
        return 0.0
    iou = inter / union
    return min(max(iou, 0.0), 1.0)


@_jit
def _iou_matrix(boxes1, boxes2):
    n = boxes1.shape[0]
    m = boxes2.shape[0]
    out = np.zeros((n, m))
    c1 = np.empty((4, 2))
    c2 = np.empty((4, 2))
    buf_in = np.empty((_MAX_VERTICES, 2))
    buf_out = np.empty((_MAX_VERTICES, 2))
    for i in range(n):
        for j in range(m):
            out[i, j] = _iou_pair(boxes1[i], boxes2[j], c1, c2, buf_in,
                                  buf_out)
    return out


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 7)
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise ValueError(f'{name} must have shape (N, 7) '
                         '(cx, cy, cz, length, width, height, heading), '
                         f'got {arr.shape}')
    return np.ascontiguousarray(arr)


def box3d_iou_matrix(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise 3D IoU of rotated boxes.

    Args:
        boxes1 (np.ndarray): (N, 7) boxes ``(cx, cy, cz, l, w, h, heading)``,
            gravity centre, metres / radians.
        boxes2 (np.ndarray): (M, 7) boxes in the same format.

    Returns:
        np.ndarray: (N, M) float64 IoU in ``[0, 1]``.
    """
    b1 = _as_boxes(boxes1, 'boxes1')
    b2 = _as_boxes(boxes2, 'boxes2')
    if b1.shape[0] == 0 or b2.shape[0] == 0:
        return np.zeros((b1.shape[0], b2.shape[0]))
    return _iou_matrix(b1, b2)


def box3d_iou(box1: np.ndarray, box2: np.ndarray) -> float:
    """3D IoU of two single boxes (7 values each, see module docstring)."""
    return float(
        box3d_iou_matrix(np.reshape(box1, (1, 7)), np.reshape(box2,
                                                              (1, 7)))[0, 0])


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """BEV corners of boxes, counter-clockwise.

    Args:
        boxes (np.ndarray): (N, 7) boxes.

    Returns:
        np.ndarray: (N, 4, 2) corner coordinates (m).
    """
    b = _as_boxes(boxes, 'boxes')
    out = np.empty((b.shape[0], 4, 2))
    for i in range(b.shape[0]):
        _corners(b[i, 0], b[i, 1], b[i, 3], b[i, 4], b[i, 6], out[i])
    return out
