"""Object depth map: a training-only auxiliary head and its target painter.

The head predicts, at every cell of one feature map of the detector, the
depth of the object seen there together with a log-variance (aleatoric
uncertainty, Laplacian likelihood). Its target is painted on the fly from
the ground-truth 2D boxes and depths; cells outside every box are ignored.

Which 2D box belongs to which depth: mmdet3d's mono3d pipelines keep
``gt_instances`` (2D) and ``gt_instances_3d`` index-aligned. KITTI and Waymo
infos store ``bbox``, ``bbox_3d``, ``center_2d`` and ``depth`` in one
instance dict; ``Det3DDataset.parse_ann_info`` stacks them in the same
order; ``LoadAnnotations3D``, ``RandomFlip3D``, ``AffineResize`` (which
filters all of them with one mask) and ``Pack3DDetInputs`` keep the order.
So when an image has as many 2D boxes as depths, box ``i`` is paired with
depth ``i``. When the counts differ (a pipeline that drops 2D boxes only),
the 2D box of each object is the bounding rectangle of its projected 3D
box corners, projected with the sample's ``cam2img``; this assumes
``cam2img`` maps to input-image pixels (not true after ``AffineResize``,
which keeps the counts equal anyway).
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmdet3d.registry import MODELS
from ...structures import project_boxes_to_image
from ..defaults import MAX_DEPTH, MIN_DEPTH

Stride = Union[float, Tuple[float, float]]


def _as_stride_pair(stride: Stride) -> Tuple[float, float]:
    if isinstance(stride, (int, float)):
        return float(stride), float(stride)
    stride_y, stride_x = stride
    return float(stride_y), float(stride_x)


def paint_object_depth_map(bboxes: Tensor, depths: Tensor,
                           feat_hw: Sequence[int], stride: Stride) -> Tensor:
    """Paint per-cell object depths from 2D boxes, nearest object on top.

    A cell ``(r, c)`` of the map covers input pixels
    ``[c * sx, (c + 1) * sx) x [r * sy, (r + 1) * sy)``; it belongs to a box
    when its centre ``((c + 0.5) * sx, (r + 0.5) * sy)`` lies inside the box
    (edges included), i.e. the box is rasterised at full resolution and
    sampled at cell centres, without blending box edges with background.
    A cell covered by several boxes takes the smallest depth (as painting
    far to near, near overwriting). Boxes are clipped by the map's border.

    Args:
        bboxes (Tensor): Boxes (x1, y1, x2, y2) in input-image pixels,
            shape (N, 4).
        depths (Tensor): Object depths in metres, shape (N, ). Objects with
            a non-finite or non-positive depth, or an empty box, are skipped.
        feat_hw (Sequence[int]): Height and width of the map.
        stride (float | tuple[float, float]): Input pixels per cell, one
            value or (stride_y, stride_x).

    Returns:
        Tensor: Depth map, shape (H, W), float32, 0 where no box covers the
        cell (background).
    """
    height, width = int(feat_hw[0]), int(feat_hw[1])
    stride_y, stride_x = _as_stride_pair(stride)
    device = bboxes.device if isinstance(bboxes, Tensor) else None
    bboxes = torch.as_tensor(
        bboxes, dtype=torch.float32, device=device).reshape(-1, 4)
    depths = torch.as_tensor(
        depths, dtype=torch.float32, device=bboxes.device).reshape(-1)
    if bboxes.shape[0] != depths.shape[0]:
        raise ValueError(f'{bboxes.shape[0]} boxes but {depths.shape[0]} '
                         'depths')
    depth_map = bboxes.new_zeros((height, width))
    valid = torch.isfinite(depths) & (depths > 0) & \
        torch.isfinite(bboxes).all(dim=1) & \
        (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])
    if not bool(valid.any()):
        return depth_map
    bboxes, depths = bboxes[valid], depths[valid]
    cell_x = (torch.arange(width, device=bboxes.device) + 0.5) * stride_x
    cell_y = (torch.arange(height, device=bboxes.device) + 0.5) * stride_y
    in_x = (cell_x[None] >= bboxes[:, 0:1]) & (cell_x[None] <= bboxes[:, 2:3])
    in_y = (cell_y[None] >= bboxes[:, 1:2]) & (cell_y[None] <= bboxes[:, 3:4])
    covered = in_y[:, :, None] & in_x[:, None, :]  # (N, H, W)
    stacked = torch.where(covered, depths[:, None, None],
                          depths.new_tensor(float('inf')))
    nearest = stacked.min(dim=0).values
    return torch.where(torch.isfinite(nearest), nearest, depth_map)


def _sample_boxes_and_depths(data_sample,
                             warn_state: Dict[str, bool]
                             ) -> Tuple[Tensor, Tensor]:
    gt_3d = data_sample.gt_instances_3d
    depths = gt_3d.get('depths', None)
    if depths is None:
        raise KeyError('gt_instances_3d needs `depths` to paint the object '
                       'depth map (LoadAnnotations3D(with_bbox_depth=True) '
                       "and Pack3DDetInputs key 'depths')")
    depths = torch.as_tensor(depths).reshape(-1).float()
    gt_2d = data_sample.get('gt_instances', None)
    bboxes = gt_2d.get('bboxes', None) if gt_2d is not None else None
    if bboxes is not None and not isinstance(bboxes, Tensor):
        # mmdet box structures (HorizontalBoxes) keep the tensor in .tensor
        bboxes = getattr(bboxes, 'tensor', None)
        bboxes = torch.as_tensor(bboxes) if bboxes is not None else None
    if bboxes is not None and bboxes.reshape(-1, 4).shape[0] == \
            depths.shape[0]:
        return bboxes.reshape(-1, 4).float(), depths.to(bboxes.device)
    bboxes_3d = gt_3d.get('bboxes_3d', None)
    cam2img = data_sample.metainfo.get('cam2img', None)
    if bboxes_3d is None or cam2img is None:
        raise KeyError(
            'cannot pair 2D boxes with depths: gt_instances.bboxes is '
            'missing or not index-aligned with gt_instances_3d.depths, and '
            'gt_instances_3d.bboxes_3d / metainfo cam2img are not available '
            'to project the 3D boxes instead')
    if not warn_state.get('warned', False):
        warnings.warn('gt_instances.bboxes and gt_instances_3d.depths have '
                      'different lengths; painting the object depth map '
                      'from projected 3D boxes (cam2img) instead')
        warn_state['warned'] = True
    boxes = project_boxes_to_image(bboxes_3d, cam2img)
    return boxes, depths.to(boxes.device)


def paint_batch_depth_targets(batch_data_samples: Sequence,
                              feat_hw: Sequence[int],
                              stride: Stride,
                              min_depth: float = 0.,
                              max_depth: float = float('inf'),
                              device: Optional[torch.device] = None
                              ) -> Tensor:
    """Object depth map targets for a batch of data samples.

    Args:
        batch_data_samples (Sequence[:obj:`Det3DDataSample`]): With
            ``gt_instances.bboxes`` (input pixels, xyxy) and
            ``gt_instances_3d.depths`` (see the module docstring for how
            they are paired).
        feat_hw (Sequence[int]): Height and width of the map.
        stride (float | tuple[float, float]): Stride (y, x) of the map.
        min_depth (float): Objects nearer than this are not painted.
        max_depth (float): Objects farther than this are not painted.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: Targets, shape (B, H, W), float32, 0 on background.
    """
    warn_state: Dict[str, bool] = {}
    maps: List[Tensor] = []
    for data_sample in batch_data_samples:
        boxes, depths = _sample_boxes_and_depths(data_sample, warn_state)
        keep = torch.isfinite(depths) & (depths >= min_depth) & \
            (depths <= max_depth)
        maps.append(
            paint_object_depth_map(boxes[keep], depths[keep], feat_hw,
                                   stride).to(device))
    if not maps:
        return torch.zeros((0, int(feat_hw[0]), int(feat_hw[1])),
                           device=device)
    return torch.stack(maps)


@MODELS.register_module()
class ObjectDepthMapHead(BaseModule):
    """Auxiliary head regressing a dense object depth map (training only).

    ``Conv3x3(C -> feat_channels) + ReLU + Conv1x1(feat_channels -> 2)``
    giving a depth logit ``x`` and a log-variance ``s`` per cell. The depth
    is decoded as ``1 / (sigmoid(x) + 1e-6) - 1`` metres and trained with
    ``sqrt(2) * exp(-s) * |d_hat - d| + s`` averaged over the cells covered
    by an object box (background ignored).

    Args:
        in_channels (int): Channels of the feature map the head reads.
        feat_channels (int): Hidden channels. Defaults to 256.
        loss_weight (float): Weight of ``loss_obj_depth``. Defaults to 1.0.
        min_depth (float): Objects nearer than this (metres) are not painted
            into the target. Defaults to ``defaults.MIN_DEPTH``.
        max_depth (float): Objects farther than this (metres) are not
            painted into the target. Defaults to ``defaults.MAX_DEPTH``.
        init_std (float): Std of the normal init of both convs (biases 0).
            Defaults to 0.001.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to a normal init of both convs with ``init_std``.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int = 256,
                 loss_weight: float = 1.0,
                 min_depth: float = MIN_DEPTH,
                 max_depth: float = MAX_DEPTH,
                 init_std: float = 0.001,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = dict(
                type='Normal', layer='Conv2d', std=init_std, bias=0.)
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError('ObjectDepthMapHead: in_channels must be a '
                             f'positive int, got {in_channels!r}')
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.loss_weight = loss_weight
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pred = nn.Conv2d(feat_channels, 2, 1)
        # Same init as init_cfg, also when init_weights() is never called.
        for conv in (self.conv, self.pred):
            nn.init.normal_(conv.weight, 0., init_std)
            nn.init.constant_(conv.bias, 0.)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Predict depth logits and log-variances.

        Args:
            x (Tensor): Feature map, shape (B, C, H, W).

        Returns:
            tuple[Tensor, Tensor]: Depth logits and log-variances, each of
            shape (B, 1, H, W).
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'ObjectDepthMapHead got a feature map with {x.shape[1]} '
                f'channels but in_channels={self.in_channels}; set '
                f'depth_map_head.in_channels={x.shape[1]}')
        out = self.pred(self.relu(self.conv(x)))
        return out[:, 0:1], out[:, 1:2]

    @staticmethod
    def decode_depth(depth_logits: Tensor) -> Tensor:
        """Depth in metres from logits: ``1 / (sigmoid(x) + 1e-6) - 1``."""
        return 1. / (depth_logits.sigmoid() + 1e-6) - 1.

    def get_targets(self, batch_data_samples: Sequence,
                    feat_hw: Sequence[int], stride: Stride,
                    device: Optional[torch.device] = None) -> Tensor:
        """Paint the targets, see :func:`paint_batch_depth_targets`.

        Returns:
            Tensor: Targets, shape (B, H, W), 0 on background.
        """
        return paint_batch_depth_targets(batch_data_samples, feat_hw, stride,
                                         self.min_depth, self.max_depth,
                                         device)

    def loss_by_feat(self, depth_logits: Tensor, log_vars: Tensor,
                     targets: Tensor) -> Dict[str, Tensor]:
        """Uncertainty-weighted L1 loss over the painted cells (float32).

        Args:
            depth_logits (Tensor): Shape (B, 1, H, W).
            log_vars (Tensor): Shape (B, 1, H, W).
            targets (Tensor): Shape (B, H, W), metres, 0 = ignore.

        Returns:
            dict[str, Tensor]: ``loss_obj_depth``, a scalar; zero (attached
            to the head's outputs) when no cell is painted.
        """
        device_type = depth_logits.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            depth_logits = depth_logits.float()[:, 0]
            log_vars = log_vars.float()[:, 0]
            targets = targets.to(depth_logits.device, torch.float32)
            if targets.shape != depth_logits.shape:
                raise ValueError(
                    f'targets of shape {tuple(targets.shape)} for '
                    f'predictions of shape {tuple(depth_logits.shape)} '
                    '(B, H, W)')
            valid = targets > 0
            if not bool(valid.any()):
                zero = (depth_logits.sum() + log_vars.sum()) * 0. + 0.
                return dict(loss_obj_depth=zero)
            pred = self.decode_depth(depth_logits[valid])
            log_var = log_vars[valid]
            loss = math.sqrt(2.) * torch.exp(-log_var) * \
                (pred - targets[valid]).abs() + log_var
            return dict(loss_obj_depth=self.loss_weight * loss.mean())

    def loss(self, x: Tensor, batch_data_samples: Sequence,
             stride: Stride) -> Dict[str, Tensor]:
        """Forward the head and compute its loss.

        Args:
            x (Tensor): Feature map, shape (B, C, H, W).
            batch_data_samples (Sequence[:obj:`Det3DDataSample`]): Ground
                truth, see :func:`paint_batch_depth_targets`.
            stride (float | tuple[float, float]): Stride (y, x) of ``x``
                relative to the batch input, in pixels.

        Returns:
            dict[str, Tensor]: ``loss_obj_depth``.
        """
        targets = self.get_targets(batch_data_samples, x.shape[-2:], stride,
                                   x.device)
        return self.loss_by_feat(*self(x), targets)
