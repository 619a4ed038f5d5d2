"""Box coder of MonoDLE (Ma et al., CVPR 2021).

MonoDLE ("Delving into Localization Errors for Monocular 3D Object
Detection", X. Ma, Y. Zhang, D. Xu, D. Zhou, S. Yi, H. Li, W. Ouyang,
CVPR 2021, arXiv:2103.16237) is a CenterNet-style detector: every object is
represented at the feature-map cell ``c = floor(p_3d / s)`` of its
*projected 3D centre* ``p_3d`` (input pixels, stride ``s``), not of its 2D
box centre (the paper's first strategy). Relative to that cell it regresses

* the 2D box: ``offset_2d = p_2d / s - c`` (``p_2d`` the 2D box centre) and
  ``size_2d = (w, h) / s``, both in feature-map cells;
* the 3D centre: ``offset_3d = p_3d / s - c``;
* the depth ``z`` of the 3D centre in metres;
* the size ``(l, h, w)`` as a residual to the mean size of its class;
* the observation angle ``alpha = rotation_y - atan2(x, z)`` as one of
  ``B = 12`` bins of width ``2 pi / B`` centred on ``k 2 pi / B`` plus a
  residual in ``[-pi / B, pi / B)`` (``heading_angle='yaw'`` codes
  ``rotation_y`` itself instead, an option of this add-on).

The units and the angle coding follow the authors' release
(github.com/xinzhuma/monodle, ``lib/datasets/kitti/kitti_dataset.py``,
``lib/datasets/utils.py: angle2class, class2angle`` and
``lib/helpers/decode_helper.py``); this is a new implementation.

Decoding inverts each step. The 3D centre is lifted from its pixel and its
depth by solving the projection ``[u p_2, v p_2, p_2] = K X + t`` for the
two unknown coordinates of ``X`` (``P = [K | t]`` is ``cam2img``; ``z`` is
known), so encode and decode are exact inverses for any ``cam2img``; and
``rotation_y = alpha + atan2(x, z)`` (or the decoded angle itself with
``heading_angle='yaw'``).
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.task_modules import BaseBBoxCoder
from torch import Tensor

from mmdet3d.registry import TASK_UTILS
from mmdet3d.structures import CameraInstance3DBoxes

__all__ = ['MonoDLECoder', 'HEADING_ANGLES']

#: What MonoDLECoder's heading bins can code.
HEADING_ANGLES = ('alpha', 'yaw')

Stride = Union[float, Tuple[float, float]]

# The release's depth transform d = 1 / (sigmoid(o) + 1e-6) - 1 (metres).
_DEPTH_EPS = 1e-6


def _stride_xy(stride: Stride) -> Tuple[float, float]:
    """``(stride_x, stride_y)`` from one value or a pair."""
    if isinstance(stride, (int, float)):
        return float(stride), float(stride)
    stride_x, stride_y = stride
    return float(stride_x), float(stride_y)


def _wrap_angle(angle: Tensor) -> Tensor:
    """Wrap angles to ``[-pi, pi)``."""
    return angle - torch.floor((angle + math.pi) / (2 * math.pi)) * (
        2 * math.pi)


@TASK_UTILS.register_module()
class MonoDLECoder(BaseBBoxCoder):
    """Encode KITTI-style 3D boxes to MonoDLE's targets and decode them.

    All pixel quantities are in the frame the caller gives: input-image
    pixels for ``encode`` (``centers_2d`` and ``bboxes_2d`` as mmdet3d's
    pipelines deliver them), and for ``decode`` the frame given by
    ``feat_to_img`` (default: input pixels, ``cell * stride``); ``cam2img``
    must map camera coordinates to that same frame.

    Args:
        mean_sizes (Sequence[Sequence[float]]): Mean size ``(l, h, w)`` in
            metres of every class, in the order of the dataset's classes.
            Sizes are regressed as residuals to them (zeros: absolute
            sizes, the release's ``meanshape: False``).
        num_heading_bins (int): Number ``B`` of heading bins. Defaults to
            12 (MonoDLE).
        heading_angle (str): The angle the bins code: ``'alpha'``, the
            observation angle (MonoDLE; what the object's appearance
            shows, the same for an object anywhere along its viewing ray),
            or ``'yaw'``, ``rotation_y`` itself (egocentric). With
            ``'yaw'`` a road-aligned object has the same target wherever
            it is in the image, which a translation-equivariant head
            learns from far fewer samples when most objects follow the
            road; ``alpha`` needs the appearance. Defaults to ``'alpha'``.
        code_size (int): Size of a decoded box. Defaults to 7
            ``(x, y, z, l, h, w, yaw)``, bottom centre in camera
            coordinates as :class:`CameraInstance3DBoxes`.
    """

    def __init__(self,
                 mean_sizes: Sequence[Sequence[float]],
                 num_heading_bins: int = 12,
                 heading_angle: str = 'alpha',
                 code_size: int = 7) -> None:
        super().__init__()
        sizes = torch.as_tensor(mean_sizes, dtype=torch.float32)
        if sizes.dim() != 2 or sizes.shape[1] != 3 or sizes.shape[0] < 1:
            raise ValueError(
                'MonoDLECoder.mean_sizes must be one (l, h, w) triple per '
                f'class, e.g. ((3.53, 1.53, 1.63), ), got {mean_sizes!r}')
        if not isinstance(num_heading_bins, int) or num_heading_bins < 1:
            raise ValueError('MonoDLECoder.num_heading_bins must be a '
                             f'positive int, got {num_heading_bins!r}')
        if heading_angle not in HEADING_ANGLES:
            raise ValueError(f'MonoDLECoder.heading_angle must be one of '
                             f'{HEADING_ANGLES}, got {heading_angle!r}')
        if code_size != 7:
            raise ValueError('MonoDLECoder decodes 7-dim boxes (x, y, z, l, '
                             f'h, w, yaw); got code_size={code_size}')
        self.mean_sizes = sizes
        self.num_heading_bins = num_heading_bins
        self.heading_angle = heading_angle
        self.bin_size = 2 * math.pi / num_heading_bins
        self.code_size = code_size

    @property
    def num_classes(self) -> int:
        """Number of classes with a mean size."""
        return int(self.mean_sizes.shape[0])

    # ------------------------------------------------------------------
    # elementary codes
    # ------------------------------------------------------------------
    def mean_size_of(self, labels: Tensor) -> Tensor:
        """Mean sizes ``(l, h, w)`` of ``labels``, shape (N, 3)."""
        labels = labels.long()
        if labels.numel() and (int(labels.min()) < 0 or
                               int(labels.max()) >= self.num_classes):
            raise ValueError(
                f'labels must lie in [0, {self.num_classes}) (one mean size '
                f'per class in MonoDLECoder.mean_sizes), got '
                f'{labels.unique().tolist()}')
        return self.mean_sizes.to(labels.device)[labels]

    def encode_heading(self, alpha: Tensor) -> Tuple[Tensor, Tensor]:
        """Bin and residual of heading angles (``alpha``, or ``rotation_y``
        with ``heading_angle='yaw'``).

        With ``w = 2 pi / B``: ``k = floor(((alpha + w / 2) mod 2 pi) / w)``
        and ``r = ((alpha + w / 2) mod 2 pi) - (k w + w / 2)``, so that
        ``alpha = k w + r (mod 2 pi)`` and ``r`` lies in ``[-w/2, w/2)``
        (release: ``angle2class``).

        Args:
            alpha (Tensor): Angles in radians, any shape.

        Returns:
            tuple[Tensor, Tensor]: Bins (long) and residuals (radians),
            shaped like ``alpha``.
        """
        w = self.bin_size
        shifted = torch.remainder(alpha + w / 2, 2 * math.pi)
        bins = torch.floor(shifted / w).long().clamp_(
            0, self.num_heading_bins - 1)
        residual = shifted - (bins.to(alpha.dtype) * w + w / 2)
        return bins, residual

    def decode_heading(self, bins: Tensor, residual: Tensor) -> Tensor:
        """The coded angle ``k w + r`` wrapped to ``[-pi, pi)``
        (``class2angle``)."""
        return _wrap_angle(bins.to(residual.dtype) * self.bin_size + residual)

    @staticmethod
    def depth_from_raw(raw: Tensor) -> Tensor:
        """The release's depth transform ``d = 1 / (sigmoid(o) + 1e-6) - 1``.

        Args:
            raw (Tensor): Raw depth outputs ``o`` of the head.

        Returns:
            Tensor: Depths in metres, in ``(~0, 1e6)``.
        """
        return 1. / (raw.sigmoid() + _DEPTH_EPS) - 1.

    @staticmethod
    def depth_to_raw(depth: Tensor) -> Tensor:
        """Inverse of :meth:`depth_from_raw` (``depth > 0``)."""
        prob = 1. / (depth + 1.) - _DEPTH_EPS
        return torch.log(prob) - torch.log1p(-prob)

    # ------------------------------------------------------------------
    # boxes
    # ------------------------------------------------------------------
    def encode(self, bboxes_3d: CameraInstance3DBoxes, labels_3d: Tensor,
               centers_2d: Tensor, bboxes_2d: Tensor,
               stride: Stride) -> Dict[str, Tensor]:
        """Targets of MonoDLE's regression branches for N objects.

        Args:
            bboxes_3d (:obj:`CameraInstance3DBoxes`): Boxes in camera
                coordinates (bottom centre, ``(l, h, w)``, ``rotation_y``).
            labels_3d (Tensor): Class indices, shape (N, ).
            centers_2d (Tensor): Projected 3D (gravity) centres in input
                pixels, shape (N, 2).
            bboxes_2d (Tensor): 2D boxes ``(x1, y1, x2, y2)`` in input
                pixels, shape (N, 4).
            stride (float | tuple[float, float]): Input pixels per cell,
                one value or ``(stride_x, stride_y)``.

        Returns:
            dict[str, Tensor]: Per object (N rows):

            - ``cells`` (long, (N, 2)): cell ``(x, y)`` of the projected
              3D centre, ``floor(centers_2d / stride)``;
            - ``offset_2d`` (N, 2), ``size_2d`` (N, 2), ``offset_3d``
              (N, 2): in cells;
            - ``depth`` (N, ): ``z`` of the gravity centre, metres;
            - ``size_3d`` (N, 3): ``(l, h, w)`` minus the class mean;
            - ``dims`` (N, 3): ``(l, h, w)``, metres;
            - ``alpha`` (N, ): the observation angle;
            - ``heading_bin`` (long, (N, )), ``heading_res`` (N, ): of
              ``alpha`` or of ``yaw`` (``heading_angle``).
        """
        sx, sy = _stride_xy(stride)
        scale = centers_2d.new_tensor([sx, sy])
        centers = centers_2d.reshape(-1, 2) / scale
        cells = torch.floor(centers)
        boxes = bboxes_2d.reshape(-1, 4)
        box_centers = (boxes[:, :2] + boxes[:, 2:]) / 2 / scale
        box_sizes = (boxes[:, 2:] - boxes[:, :2]) / scale
        tensor = bboxes_3d.tensor.to(centers.device)
        dims = tensor[:, 3:6]
        yaw = tensor[:, 6]
        alpha = _wrap_angle(yaw - torch.atan2(tensor[:, 0], tensor[:, 2]))
        heading_bin, heading_res = self.encode_heading(
            alpha if self.heading_angle == 'alpha' else yaw)
        return dict(
            cells=cells.long(),
            offset_2d=box_centers - cells,
            size_2d=box_sizes,
            offset_3d=centers - cells,
            depth=bboxes_3d.gravity_center[:, 2].to(centers.device),
            size_3d=dims - self.mean_size_of(labels_3d).to(dims),
            dims=dims,
            alpha=alpha,
            heading_bin=heading_bin,
            heading_res=heading_res)

    @staticmethod
    def lift_centers(points: Tensor, depths: Tensor,
                     cam2img: Tensor) -> Tensor:
        """Camera coordinates of pixels ``(u, v)`` whose ``z`` is known.

        Solves ``[u p_2, v p_2, p_2]^T = K X + t`` with ``X = (x, y, z)``
        for ``x`` and ``y`` (a 2x2 linear system per point), where
        ``[K | t]`` are the first three rows of ``cam2img``.

        Args:
            points (Tensor): Pixels ``(u, v)``, shape (N, 2).
            depths (Tensor): ``z`` in metres, shape (N, ).
            cam2img (Tensor): Projection, shape (3, 3), (3, 4) or (4, 4).

        Returns:
            Tensor: ``(x, y, z)``, shape (N, 3).
        """
        proj = points.new_zeros((3, 4))
        proj[:, :cam2img.shape[1]] = cam2img[:3].to(points)
        K, t = proj[:, :3], proj[:, 3]
        u, v, z = points[:, 0], points[:, 1], depths
        p2_known = K[2, 2] * z + t[2]
        rows = []
        rhs = []
        for coord, r in ((u, 0), (v, 1)):
            rows.append(torch.stack([K[r, 0] - coord * K[2, 0],
                                     K[r, 1] - coord * K[2, 1]], dim=-1))
            rhs.append(coord * p2_known - K[r, 2] * z - t[r])
        A = torch.stack(rows, dim=1)  # (N, 2, 2)
        b = torch.stack(rhs, dim=1)  # (N, 2)
        xy = torch.linalg.solve(A, b.unsqueeze(-1)).squeeze(-1)
        return torch.cat([xy, z[:, None]], dim=1)

    def decode(self,
               cells: Tensor,
               offset_2d: Tensor,
               size_2d: Tensor,
               offset_3d: Tensor,
               depth: Tensor,
               size_3d: Tensor,
               heading_bin: Tensor,
               heading_res: Tensor,
               labels: Tensor,
               cam2img: Tensor,
               stride: Stride,
               feat_to_img: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor]:
        """3D boxes and 2D boxes of N decoded objects.

        Args:
            cells (Tensor): Cells ``(x, y)`` (heatmap peaks), shape (N, 2).
            offset_2d (Tensor): 2D centre offsets in cells, shape (N, 2).
            size_2d (Tensor): 2D sizes ``(w, h)`` in cells, shape (N, 2).
            offset_3d (Tensor): Projected 3D centre offsets in cells,
                shape (N, 2).
            depth (Tensor): Depths in metres, shape (N, ).
            size_3d (Tensor): Size residuals ``(l, h, w)``, shape (N, 3).
            heading_bin (Tensor): Heading bins (long), shape (N, ).
            heading_res (Tensor): Residuals of those bins, shape (N, ).
            labels (Tensor): Class indices, shape (N, ).
            cam2img (Tensor): Camera to ``feat_to_img``'s pixel frame,
                shape (3, 3), (3, 4) or (4, 4).
            stride (float | tuple[float, float]): Input pixels per cell.
            feat_to_img (Tensor, optional): 3x3 affine matrix from cell
                coordinates to the pixel frame of ``cam2img`` (e.g. the
                inverse of AffineResize's ``trans_mat``). Defaults to
                ``diag(stride_x, stride_y, 1)`` (input pixels).

        Returns:
            tuple[Tensor, Tensor]: Boxes ``(x, y, z, l, h, w, yaw)`` (bottom
            centre, camera coordinates), shape (N, 7), and 2D boxes
            ``(x1, y1, x2, y2)`` in the pixel frame, shape (N, 4).
        """
        cells = cells.to(offset_2d.dtype)
        if feat_to_img is None:
            sx, sy = _stride_xy(stride)
            feat_to_img = offset_2d.new_tensor([[sx, 0., 0.], [0., sy, 0.],
                                                [0., 0., 1.]])
        feat_to_img = feat_to_img.to(offset_2d)

        def to_img(points: Tensor) -> Tensor:
            return points @ feat_to_img[:2, :2].t() + feat_to_img[:2, 2]

        box_center = cells + offset_2d
        half = size_2d / 2
        corner_a = to_img(box_center - half)
        corner_b = to_img(box_center + half)
        bboxes_2d = torch.cat([torch.minimum(corner_a, corner_b),
                               torch.maximum(corner_a, corner_b)], dim=1)
        center_3d = to_img(cells + offset_3d)
        dims = size_3d + self.mean_size_of(labels).to(size_3d)
        gravity = self.lift_centers(center_3d, depth, cam2img)
        bottom = gravity + torch.stack(
            [torch.zeros_like(depth), dims[:, 1] / 2,
             torch.zeros_like(depth)], dim=1)
        angle = self.decode_heading(heading_bin, heading_res)
        if self.heading_angle == 'alpha':
            yaw = _wrap_angle(angle + torch.atan2(bottom[:, 0], bottom[:, 2]))
        else:
            yaw = angle
        boxes = torch.cat([bottom, dims, yaw[:, None]], dim=1)
        return boxes, bboxes_2d
