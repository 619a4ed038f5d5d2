"""Exact overlaps of rotated rectangles on the CPU (numba).

This is a CPU replacement for mmdet3d's numba-CUDA kernel
``mmdet3d.evaluation.functional.kitti_utils.rotate_iou.rotate_iou_gpu_eval``
which the KITTI evaluation uses for its BEV and 3D overlaps. It follows the
same box convention and the same ``criterion`` semantics, but computes the
intersection exactly (up to float64 rounding) instead of with the kernel's
float32 vertex sorting:

* Each box ``[x, y, w, h, angle]`` is the rectangle of size ``w x h``
  centred at ``(x, y)`` whose corners are ``R(angle) @ (+-w/2, +-h/2)`` with
  ``R(a) = [[cos a, sin a], [-sin a, cos a]]``, i.e. rotated clockwise by
  ``angle`` in a right-handed ``x``-``y`` frame. In the KITTI evaluation the
  boxes are camera-frame BEV boxes ``[x, z, l, w, rotation_y]``.
* The intersection polygon of two convex polygons is obtained by clipping
  one with the half-planes of the other's edges (Sutherland & Hodgman,
  "Reentrant polygon clipping", CACM 17(1), 1974) and its area by the
  shoelace formula.
* Pairs whose axis-aligned bounding boxes do not overlap are skipped, which
  is most pairs in ``calculate_iou_partly`` (boxes of different frames).
"""
import math
from typing import Optional

import numba
import numpy as np

__all__ = ['rotate_iou_cpu_eval', 'rbbox_corners']

# Output capacity of one clipping pass. Every subject vertex emits at most
# two vertices (itself and one edge crossing), so four passes over a
# rectangle emit at most 4 * 2**4 = 64 vertices even in degenerate cases
# (an exactly convex input never exceeds 8).
_MAX_VERTICES = 64

# Number of box pairs from which the multi-threaded kernel is used.
_PARALLEL_MIN_PAIRS = 1 << 20


@numba.njit(cache=True)
def _fill_corners(boxes: np.ndarray, corners: np.ndarray,
                  aabbs: np.ndarray) -> None:
    """Write the corners and axis-aligned bounds of rotated boxes.

    Args:
        boxes (np.ndarray): (M, 5) float64 ``[x, y, w, h, angle]``.
        corners (np.ndarray): (M, 4, 2) float64 output; corners in the order
            (+w, -h), (+w, +h), (-w, +h), (-w, -h) of the box frame, which
            is counter-clockwise when ``w * h > 0``.
        aabbs (np.ndarray): (M, 4) float64 output ``[x1, y1, x2, y2]``.
    """
    for m in range(boxes.shape[0]):
        cx, cy = boxes[m, 0], boxes[m, 1]
        hw, hh = 0.5 * boxes[m, 2], 0.5 * boxes[m, 3]
        cos_a, sin_a = math.cos(boxes[m, 4]), math.sin(boxes[m, 4])
        for c in range(4):
            lx = hw if c < 2 else -hw
            ly = hh if (c == 1 or c == 2) else -hh
            corners[m, c, 0] = cos_a * lx + sin_a * ly + cx
            corners[m, c, 1] = -sin_a * lx + cos_a * ly + cy
        aabbs[m, 0] = corners[m, :, 0].min()
        aabbs[m, 1] = corners[m, :, 1].min()
        aabbs[m, 2] = corners[m, :, 0].max()
        aabbs[m, 3] = corners[m, :, 1].max()


@numba.njit(cache=True)
def _intersection_area(subject: np.ndarray, clip: np.ndarray,
                       clip_orientation: float, buf_in: np.ndarray,
                       buf_out: np.ndarray) -> float:
    """Area of the intersection of two convex quadrilaterals.

    Sutherland-Hodgman: the subject polygon is clipped successively by the
    four half-planes bounded by the clip polygon's edges; a point ``p`` is
    inside edge ``a -> b`` when ``s * cross(b - a, p - a) >= 0`` with ``s``
    the orientation (sign of the signed area) of the clip polygon.

    Args:
        subject (np.ndarray): (4, 2) corners of the first box.
        clip (np.ndarray): (4, 2) corners of the second box, ordered along
            its boundary.
        clip_orientation (float): +1.0 if ``clip`` is counter-clockwise,
            -1.0 if clockwise.
        buf_in (np.ndarray): (_MAX_VERTICES, 2) scratch buffer.
        buf_out (np.ndarray): (_MAX_VERTICES, 2) scratch buffer.

    Returns:
        float: Intersection area, in the squared unit of the coordinates.
    """
    n_in = 4
    for i in range(4):
        buf_in[i, 0] = subject[i, 0]
        buf_in[i, 1] = subject[i, 1]
    for e in range(4):
        ax, ay = clip[e, 0], clip[e, 1]
        ex = clip[(e + 1) % 4, 0] - ax
        ey = clip[(e + 1) % 4, 1] - ay
        n_out = 0
        for i in range(n_in):
            j = i + 1 if i + 1 < n_in else 0
            px, py = buf_in[i, 0], buf_in[i, 1]
            qx, qy = buf_in[j, 0], buf_in[j, 1]
            dp = clip_orientation * (ex * (py - ay) - ey * (px - ax))
            dq = clip_orientation * (ex * (qy - ay) - ey * (qx - ax))
            if dp >= 0.0:
                buf_out[n_out, 0] = px
                buf_out[n_out, 1] = py
                n_out += 1
            if (dp >= 0.0) != (dq >= 0.0):
                # dp and dq have strictly different signs: dp - dq != 0.
                t = dp / (dp - dq)
                buf_out[n_out, 0] = px + t * (qx - px)
                buf_out[n_out, 1] = py + t * (qy - py)
                n_out += 1
        if n_out < 3:
            return 0.0
        buf_in, buf_out = buf_out, buf_in
        n_in = n_out
    # Shoelace formula, relative to the first vertex for accuracy.
    x0, y0 = buf_in[0, 0], buf_in[0, 1]
    twice_area = 0.0
    for i in range(1, n_in - 1):
        twice_area += ((buf_in[i, 0] - x0) * (buf_in[i + 1, 1] - y0) -
                       (buf_in[i + 1, 0] - x0) * (buf_in[i, 1] - y0))
    return 0.5 * abs(twice_area)


@numba.njit(cache=True, error_model='numpy')
def _overlap_row(n: int, boxes: np.ndarray, qboxes: np.ndarray,
                 corners: np.ndarray, qcorners: np.ndarray,
                 aabbs: np.ndarray, qaabbs: np.ndarray,
                 q_orientation: np.ndarray, criterion: int,
                 out: np.ndarray, buf_in: np.ndarray,
                 buf_out: np.ndarray) -> None:
    """Fill row ``n`` of the overlap matrix (see rotate_iou_cpu_eval)."""
    area_n = boxes[n, 2] * boxes[n, 3]
    for k in range(qboxes.shape[0]):
        if (aabbs[n, 2] <= qaabbs[k, 0] or qaabbs[k, 2] <= aabbs[n, 0]
                or aabbs[n, 3] <= qaabbs[k, 1]
                or qaabbs[k, 3] <= aabbs[n, 1]):
            inter = 0.0
        elif q_orientation[k] == 0.0:
            inter = 0.0  # degenerate (zero-area) query box
        else:
            inter = _intersection_area(corners[n], qcorners[k],
                                       q_orientation[k], buf_in, buf_out)
        area_k = qboxes[k, 2] * qboxes[k, 3]
        # As the CUDA kernel: its first box is the query box, so criterion
        # 0 divides by the query box's area and 1 by the box's area.
        if criterion == -1:
            out[n, k] = inter / (area_k + area_n - inter)
        elif criterion == 0:
            out[n, k] = inter / area_k
        elif criterion == 1:
            out[n, k] = inter / area_n
        else:
            out[n, k] = inter


@numba.njit(cache=True)
def _prepare(boxes: np.ndarray, qboxes: np.ndarray):
    """Corners, bounds and query orientations of both box sets."""
    corners = np.empty((boxes.shape[0], 4, 2))
    aabbs = np.empty((boxes.shape[0], 4))
    qcorners = np.empty((qboxes.shape[0], 4, 2))
    qaabbs = np.empty((qboxes.shape[0], 4))
    _fill_corners(boxes, corners, aabbs)
    _fill_corners(qboxes, qcorners, qaabbs)
    q_orientation = np.sign(qboxes[:, 2] * qboxes[:, 3])
    return corners, aabbs, qcorners, qaabbs, q_orientation


@numba.njit(cache=True)
def _rotated_overlaps_serial(boxes: np.ndarray, qboxes: np.ndarray,
                             criterion: int) -> np.ndarray:
    """Single-threaded all-pairs kernel; see rotate_iou_cpu_eval."""
    out = np.zeros((boxes.shape[0], qboxes.shape[0]), dtype=np.float32)
    corners, aabbs, qcorners, qaabbs, q_orient = _prepare(boxes, qboxes)
    buf_in = np.empty((_MAX_VERTICES, 2))
    buf_out = np.empty((_MAX_VERTICES, 2))
    for n in range(boxes.shape[0]):
        _overlap_row(n, boxes, qboxes, corners, qcorners, aabbs, qaabbs,
                     q_orient, criterion, out, buf_in, buf_out)
    return out


@numba.njit(cache=True, parallel=True)
def _rotated_overlaps_parallel(boxes: np.ndarray, qboxes: np.ndarray,
                               criterion: int) -> np.ndarray:
    """Multi-threaded (over rows) all-pairs kernel; see
    rotate_iou_cpu_eval."""
    out = np.zeros((boxes.shape[0], qboxes.shape[0]), dtype=np.float32)
    corners, aabbs, qcorners, qaabbs, q_orient = _prepare(boxes, qboxes)
    for n in numba.prange(boxes.shape[0]):
        buf_in = np.empty((_MAX_VERTICES, 2))
        buf_out = np.empty((_MAX_VERTICES, 2))
        _overlap_row(n, boxes, qboxes, corners, qcorners, aabbs, qaabbs,
                     q_orient, criterion, out, buf_in, buf_out)
    return out


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    """Validate an (M, 5) box array and return it as contiguous float64."""
    arr = np.asarray(boxes)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError(f'{name} must have shape (M, 5) [x, y, w, h, '
                         f'angle], got {arr.shape}')
    return np.ascontiguousarray(arr, dtype=np.float64)


def rotate_iou_cpu_eval(boxes: np.ndarray,
                        query_boxes: np.ndarray,
                        criterion: int = -1,
                        device_id: int = 0,
                        parallel: Optional[bool] = None) -> np.ndarray:
    """Overlaps of rotated boxes on the CPU, a drop-in for mmdet3d's
    ``rotate_iou_gpu_eval``.

    Args:
        boxes (np.ndarray): (N, 5) boxes ``[x, y, w, h, angle]`` (same unit
            for x, y, w, h, e.g. metres; angle in radians, a positive angle
            turns the box clockwise as in the CUDA kernel, which is the
            camera-frame ``rotation_y`` for BEV boxes ``[x, z, l, w, ry]``).
        query_boxes (np.ndarray): (K, 5) boxes in the same format.
        criterion (int): What ``out[n, k]`` holds, with ``I`` the
            intersection area of ``boxes[n]`` and ``query_boxes[k]``,
            ``A`` the area ``w * h`` of ``boxes[n]`` and ``Q`` that of
            ``query_boxes[k]`` (exactly as the CUDA kernel, which passes
            the query box first):

            - ``-1``: IoU ``I / (A + Q - I)``;
            - ``0``: ``I / Q``;
            - ``1``: ``I / A``;
            - any other value (mmdet3d's ``d3_box_overlap`` passes 2): the
              intersection area ``I`` itself.

            Defaults to -1.
        device_id (int): Unused; accepted for signature compatibility with
            ``rotate_iou_gpu_eval``.
        parallel (bool, optional): Use the multi-threaded kernel. Defaults
            to None: multi-threaded from 2**20 pairs when numba has more
            than one thread.

    Returns:
        np.ndarray: (N, K) float32 overlaps (float32 as the CUDA kernel's).
        Zero-area boxes give NaN or inf where the formula divides by zero,
        like the kernel.
    """
    del device_id
    boxes = _as_boxes(boxes, 'boxes')
    query_boxes = _as_boxes(query_boxes, 'query_boxes')
    criterion = int(criterion)
    n, k = boxes.shape[0], query_boxes.shape[0]
    if n == 0 or k == 0:
        return np.zeros((n, k), dtype=np.float32)
    if parallel is None:
        parallel = (n * k >= _PARALLEL_MIN_PAIRS
                    and numba.get_num_threads() > 1)
    kernel = (
        _rotated_overlaps_parallel if parallel else _rotated_overlaps_serial)
    return kernel(boxes, query_boxes, criterion)


def rbbox_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners of rotated boxes in the CUDA kernel's convention.

    Args:
        boxes (np.ndarray): (M, 5) ``[x, y, w, h, angle]``.

    Returns:
        np.ndarray: (M, 4, 2) float64 corners, counter-clockwise for
        positive ``w * h``.
    """
    boxes = _as_boxes(boxes, 'boxes')
    corners = np.empty((boxes.shape[0], 4, 2))
    aabbs = np.empty((boxes.shape[0], 4))
    if boxes.shape[0]:
        _fill_corners(boxes, corners, aabbs)
    return corners
