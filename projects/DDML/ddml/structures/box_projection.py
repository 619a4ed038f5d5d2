"""The 2D box of a camera-frame 3D box: its projected corners' extent.

One function for every place that needs it: the object depth map targets
(when 2D boxes are missing), the hand-made samples of
:mod:`ddml.testing`, the Waymo metric's in-image test and the synthetic
KITTI annotations of the evaluation benchmark.
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from mmdet3d.structures import points_cam2img

__all__ = ['project_boxes_to_image']


def project_boxes_to_image(boxes_3d,
                           cam2img: Union[Tensor, np.ndarray, Sequence],
                           img_shape: Optional[Sequence[int]] = None,
                           behind: str = 'nan') -> Tensor:
    """Bounding rectangles of the projected corners of 3D boxes.

    Args:
        boxes_3d (:obj:`CameraInstance3DBoxes` | Tensor | np.ndarray): N
            boxes in camera coordinates, or their corners, shape (N, 8, 3),
            in metres.
        cam2img (Tensor | np.ndarray | Sequence): Intrinsics, shape (3, 3),
            (3, 4) or (4, 4).
        img_shape (Sequence[int], optional): ``(H, W)``: clip the boxes to
            the 0-based pixel range ``[0, W - 1] x [0, H - 1]`` (as KITTI
            labels). None keeps them unclipped. Defaults to None.
        behind (str): ``'nan'``: a box with a corner at depth ``z <= 0``
            (behind the camera, where the projection flips) gets NaN;
            ``'keep'``: every corner is projected as it is. Defaults to
            ``'nan'``.

    Returns:
        Tensor: Boxes ``(x1, y1, x2, y2)`` in pixels, shape (N, 4),
        float32, on the device of the corners.
    """
    if behind not in ('nan', 'keep'):
        raise ValueError(f"behind must be 'nan' or 'keep', got {behind!r}")
    corners = getattr(boxes_3d, 'corners', boxes_3d)
    corners = torch.as_tensor(corners).to(torch.float32)
    if corners.dim() != 3 or corners.shape[1:] != (8, 3):
        raise ValueError('boxes_3d must be 3D boxes or their corners of '
                         f'shape (N, 8, 3), got {tuple(corners.shape)}')
    if corners.shape[0] == 0:
        return corners.new_zeros((0, 4))
    proj = torch.as_tensor(
        np.asarray(cam2img, dtype=np.float64) if not isinstance(
            cam2img, Tensor) else cam2img,
        dtype=torch.float32,
        device=corners.device)
    uv = points_cam2img(corners, proj)  # (N, 8, 2)
    boxes = torch.cat([uv.min(dim=1).values, uv.max(dim=1).values], dim=1)
    if img_shape is not None:
        height, width = int(img_shape[0]), int(img_shape[1])
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
    if behind == 'nan':
        boxes[(corners[..., 2] <= 0).any(dim=1)] = float('nan')
    return boxes
