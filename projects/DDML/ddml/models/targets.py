"""Targets of the method built from a batch's ground truth.

Everything that turns ground truth into what the auxiliary losses compare
lives here, once:

* the **object depth map** (:func:`paint_batch_depth_targets`): per
  feature cell, the depth of the nearest object whose 2D box covers the
  cell (:func:`paint_object_depth_map`), 0 on background; the target of
  ``ObjectDepthMapHead`` and the depths of the dense metric loss;
* **shift-and-pair sampling** (:func:`collect_shifted_pairs`, MetricDepth,
  Liu et al., figure 3): anchor-sample pairs of feature cells and their
  depths, for ``MultiRangeDepthMetricLoss.forward_shifted_pairs``.

Which 2D box belongs to which depth: mmdet3d's mono3d pipelines keep
``gt_instances`` (2D) and ``gt_instances_3d`` index-aligned. KITTI and Waymo
infos store ``bbox``, ``bbox_3d``, ``center_2d`` and ``depth`` in one
instance dict; ``Det3DDataset.parse_ann_info`` stacks them in the same
order; ``LoadAnnotations3D``, ``RandomFlip3D``, ``AffineResize`` (which
filters all of them with one mask) and ``Pack3DDetInputs`` keep the order.
So when an image has as many 2D boxes as depths, box ``i`` is paired with
depth ``i``. When the counts differ (a pipeline that drops 2D boxes only),
the 2D box of each object is the bounding rectangle of its projected 3D
box corners (:func:`ddml.structures.project_boxes_to_image` with the
sample's ``cam2img``); this assumes ``cam2img`` maps to input-image pixels
(not true after ``AffineResize``, which keeps the counts equal anyway).
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..structures import project_boxes_to_image

__all__ = [
    'Stride', 'paint_object_depth_map', 'sample_boxes_and_depths',
    'paint_batch_depth_targets', 'collect_shifted_pairs'
]

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


def sample_boxes_and_depths(data_sample,
                            warn_state: Optional[Dict[str, bool]] = None
                            ) -> Tuple[Tensor, Tensor]:
    """The 2D box and the depth of every object of one data sample.

    Args:
        data_sample (:obj:`Det3DDataSample`): With
            ``gt_instances_3d.depths`` and either ``gt_instances.bboxes``
            index-aligned with them or ``gt_instances_3d.bboxes_3d`` and
            ``metainfo['cam2img']`` (see the module docstring).
        warn_state (dict, optional): Shared between the samples of a batch
            so that the fallback to projected 3D boxes warns once.

    Returns:
        tuple[Tensor, Tensor]: Boxes ``(x1, y1, x2, y2)`` in input pixels,
        shape (N, 4), and depths in metres, shape (N, ).
    """
    if warn_state is None:
        warn_state = {}
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
        boxes, depths = sample_boxes_and_depths(data_sample, warn_state)
        keep = torch.isfinite(depths) & (depths >= min_depth) & \
            (depths <= max_depth)
        maps.append(
            paint_object_depth_map(boxes[keep], depths[keep], feat_hw,
                                   stride).to(device))
    if not maps:
        return torch.zeros((0, int(feat_hw[0]), int(feat_hw[1])),
                           device=device)
    return torch.stack(maps)


def _unit_grid(feats: Tensor, depth: Tensor,
               unit_size: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Pool a feature map and a depth map into units.

    Args:
        feats (Tensor): Shape (B, C, H, W).
        depth (Tensor): Shape (B, H, W); invalid entries <= 0 or not
            finite.
        unit_size (int): Side of a unit in cells.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Unit features (B, Hu, Wu, C), unit
        depths (B, Hu, Wu) (mean of the valid cells, 0 where none) and the
        unit validity mask (B, Hu, Wu), with ``Hu = H // unit_size`` and
        ``Wu = W // unit_size``.
    """
    b, c, h, w = feats.shape
    hu, wu = h // unit_size, w // unit_size
    feats = feats[:, :, :hu * unit_size, :wu * unit_size]
    depth = depth[:, :hu * unit_size, :wu * unit_size]
    if unit_size > 1:
        unit_feats = F.avg_pool2d(feats, unit_size)
    else:
        unit_feats = feats
    valid = torch.isfinite(depth) & (depth > 0)
    depth = torch.where(valid, depth, torch.zeros_like(depth)).float()
    cells = (b, hu, unit_size, wu, unit_size)
    depth_sum = depth.reshape(cells).sum(dim=(2, 4))
    count = valid.reshape(cells).sum(dim=(2, 4))
    unit_valid = count > 0
    unit_depth = depth_sum / count.clamp(min=1)
    return unit_feats.permute(0, 2, 3, 1), unit_depth, unit_valid


def collect_shifted_pairs(
    feats: Tensor,
    depth: Tensor,
    unit_size: int = 1,
    shifts: Sequence[Tuple[int, int]] = ((-2, -1), ),
    cross_image: bool = True,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Form anchor-sample pairs by shifting a feature map (MetricDepth,
    figure 3).

    Both maps are divided into units of ``unit_size x unit_size`` cells
    (a remainder at the right and bottom borders is dropped). A unit's
    feature is the mean of its cells' features; its depth is the mean of
    its valid depths, and a unit with no valid depth is dropped. For each
    shift ``(dx, dy)`` (in units; ``dx=-2, dy=-1`` is 2 units left and 1
    up), the anchor unit ``(x, y)`` is paired with the unit
    ``(x + dx, y + dy)`` of the same image when that unit is inside the
    map and both units are valid. With ``cross_image=True``, each unit of
    image ``b`` is also paired with the unit at the same position of
    image ``(b + 1) % B`` (nothing when ``B == 1``).

    Pairs are ordered by shift (then the cross-image pairs), and within a
    group by image, row, column of the anchor.

    Args:
        feats (Tensor): Feature map, shape (B, C, H, W).
        depth (Tensor): Depth map in metres, shape (B, H, W) (or
            (B, 1, H, W)); entries <= 0 or not finite are invalid.
        unit_size (int): Side of a unit in cells, >= 1. Defaults to 1.
        shifts (Sequence[tuple[int, int]]): Shifts ``(dx, dy)`` in units.
            Defaults to ``((-2, -1),)``.
        cross_image (bool): Also pair units across consecutive images.
            Defaults to True.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: ``anchor_feats`` (M, C),
        ``sample_feats`` (M, C), ``anchor_depths`` (M,) and
        ``sample_depths`` (M,) in metres (float32). Gradients flow to
        ``feats``.
    """
    if feats.dim() != 4:
        raise ValueError(f'feats must have shape (B, C, H, W), got '
                         f'{tuple(feats.shape)}.')
    if depth.dim() == 4 and depth.shape[1] == 1:
        depth = depth[:, 0]
    if depth.shape != (feats.shape[0], ) + feats.shape[2:]:
        raise ValueError(f'depth must have shape (B, H, W) = '
                         f'{(feats.shape[0], ) + tuple(feats.shape[2:])}, '
                         f'got {tuple(depth.shape)}.')
    if isinstance(unit_size, bool) or not isinstance(unit_size,
                                                     int) or unit_size < 1:
        raise ValueError(f'unit_size must be a positive int (cells per '
                         f'unit side), got {unit_size!r}.')
    for shift in shifts:
        if len(shift) != 2 or not all(
                isinstance(s, int) and not isinstance(s, bool)
                for s in shift):
            raise ValueError(f'each shift must be a pair of ints (dx, dy) '
                             f'in units, got {shift!r}.')

    unit_feats, unit_depth, unit_valid = _unit_grid(feats, depth, unit_size)
    num_imgs, hu, wu = unit_depth.shape
    anchors_f, samples_f, anchors_z, samples_z = [], [], [], []

    def add(fa: Tensor, fs: Tensor, za: Tensor, zs: Tensor, va: Tensor,
            vs: Tensor) -> None:
        keep = va & vs
        anchors_f.append(fa[keep])
        samples_f.append(fs[keep])
        anchors_z.append(za[keep])
        samples_z.append(zs[keep])

    for dx, dy in shifts:
        # Anchor rows/cols whose shifted partner lies inside the map.
        y0, y1 = max(0, -dy), min(hu, hu - dy)
        x0, x1 = max(0, -dx), min(wu, wu - dx)
        if y0 >= y1 or x0 >= x1:
            continue
        a = (slice(None), slice(y0, y1), slice(x0, x1))
        s = (slice(None), slice(y0 + dy, y1 + dy), slice(x0 + dx, x1 + dx))
        add(unit_feats[a], unit_feats[s], unit_depth[a], unit_depth[s],
            unit_valid[a], unit_valid[s])
    if cross_image and num_imgs > 1:
        add(unit_feats, unit_feats.roll(-1, dims=0), unit_depth,
            unit_depth.roll(-1, dims=0), unit_valid,
            unit_valid.roll(-1, dims=0))

    if not anchors_f:
        empty_f = unit_feats.reshape(-1, unit_feats.shape[-1])[:0]
        empty_z = unit_depth.reshape(-1)[:0]
        return empty_f, empty_f, empty_z, empty_z
    return (torch.cat(anchors_f), torch.cat(samples_f), torch.cat(anchors_z),
            torch.cat(samples_z))
