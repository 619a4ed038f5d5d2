"""Multi-range depth metric loss and shifted-pair collection.

The loss is a contrastive metric loss whose negatives are split into
depth-difference ranges with their own margins, after MetricDepth
(Liu, Yang, Zuo, Zang, "MetricDepth: Enhancing Monocular Depth Estimation
with Deep Metric Learning"). :func:`collect_shifted_pairs` forms its
anchor-sample pairs by shifting a feature map (MetricDepth, figure 3).
"""
import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmdet3d.registry import MODELS

from .utils import check_object_inputs

# Floor of a squared distance before the square root (finite gradient at
# zero distance).
_MIN_SQ_DIST = 1e-12


@MODELS.register_module()
class MultiRangeDepthMetricLoss(nn.Module):
    """Contrastive depth metric loss with multiple negative ranges.

    For M anchor-sample pairs with features ``f_a, f_s`` and depths
    ``z_a, z_s`` (metres), let ``dist = ||f_a - f_s||_2`` (raw features)
    and ``delta = |z_a - z_s|`` (``relative=True``:
    ``|z_a - z_s| / min(z_a, z_s)``, unitless). A pair is

    - positive when ``delta <= pos_radius``;
    - a negative of range ``k`` when
      ``neg_bounds[k] < delta <= neg_bounds[k + 1]`` (the last range is
      open to infinity);
    - ignored when ``pos_radius < delta <= neg_bounds[0]``, when a depth
      is not finite or not positive, or when a feature is not finite.

    The value is ``loss_weight * (mean_pos dist + sum_k mean_{neg k}
    max(0, margins[k] - dist))``; an empty set contributes zero and the
    result is always attached to the graph of the features. With
    ``neg_bounds=(0.5,), margins=(2.0,)`` this is MetricDepth's uniform
    strategy (a single negative range with one margin).

    The MetricDepth paper gives ``r_n = 0.5`` (negative radius) and a
    uniform margin ``m_u = 2`` as examples; the other defaults here
    (``pos_radius``, the further bounds and margins) are ours, since the
    paper's constants are not public.

    Computation runs in float32 with autocast disabled.

    Args:
        pos_radius (float): Largest ``delta`` of a positive pair (metres,
            or unitless when ``relative``), >= 0. Defaults to 0.25.
        neg_bounds (Sequence[float]): Strictly increasing lower bounds of
            the negative ranges; ``neg_bounds[0] >= pos_radius``.
            Defaults to (0.5, 2.0, 8.0).
        margins (Sequence[float]): Margin of each negative range, >= 0,
            same length as ``neg_bounds``. Defaults to (1.0, 2.0, 4.0).
        relative (bool): Use the relative depth difference. Defaults to
            False.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 pos_radius: float = 0.25,
                 neg_bounds: Sequence[float] = (0.5, 2.0, 8.0),
                 margins: Sequence[float] = (1.0, 2.0, 4.0),
                 relative: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        neg_bounds = tuple(float(b) for b in neg_bounds)
        margins = tuple(float(m) for m in margins)
        if len(neg_bounds) == 0:
            raise ValueError('neg_bounds must hold at least one bound; use '
                             'e.g. neg_bounds=(0.5,), margins=(2.0,) for '
                             'the uniform strategy.')
        if len(margins) != len(neg_bounds):
            raise ValueError(f'margins must have one entry per negative '
                             f'range: got {len(margins)} margins for '
                             f'{len(neg_bounds)} neg_bounds; make '
                             f'len(margins) == len(neg_bounds).')
        if not all(math.isfinite(b) for b in neg_bounds):
            raise ValueError(f'neg_bounds must be finite, got {neg_bounds} '
                             '(the last range is already open to '
                             'infinity).')
        if any(b >= c for b, c in zip(neg_bounds[:-1], neg_bounds[1:])):
            raise ValueError(f'neg_bounds must be strictly increasing, got '
                             f'{neg_bounds}; sort them and remove '
                             'duplicates.')
        if not all(math.isfinite(m) and m >= 0 for m in margins):
            raise ValueError(f'margins must be finite and >= 0, got '
                             f'{margins}.')
        if not (math.isfinite(pos_radius) and pos_radius >= 0):
            raise ValueError(f'pos_radius must be finite and >= 0, got '
                             f'{pos_radius}.')
        if pos_radius > neg_bounds[0]:
            raise ValueError(f'pos_radius ({pos_radius}) must be <= '
                             f'neg_bounds[0] ({neg_bounds[0]}) so that '
                             'positives and negatives do not overlap; '
                             'lower pos_radius or raise neg_bounds[0].')
        if not math.isfinite(loss_weight):
            raise ValueError(f'loss_weight must be finite, got '
                             f'{loss_weight}.')
        self.pos_radius = float(pos_radius)
        self.neg_bounds = neg_bounds
        self.margins = margins
        self.relative = bool(relative)
        self.loss_weight = float(loss_weight)

    def extra_repr(self) -> str:
        return (f'pos_radius={self.pos_radius}, '
                f'neg_bounds={self.neg_bounds}, margins={self.margins}, '
                f'relative={self.relative}, '
                f'loss_weight={self.loss_weight}')

    def forward(self, anchor_feats: Tensor, sample_feats: Tensor,
                anchor_depths: Tensor, sample_depths: Tensor) -> Tensor:
        """Compute the loss on M anchor-sample pairs.

        Args:
            anchor_feats (Tensor): Anchor features, shape (M, C).
            sample_feats (Tensor): Sample features, shape (M, C).
            anchor_depths (Tensor): Anchor depths in metres, shape (M,).
            sample_depths (Tensor): Sample depths in metres, shape (M,).

        Returns:
            Tensor: Scalar float32 loss, attached to the features' graph.
        """
        if anchor_feats.dim() != 2 or anchor_feats.shape != sample_feats.shape:
            raise ValueError(f'anchor_feats and sample_feats must both have '
                             f'shape (M, C), got {tuple(anchor_feats.shape)} '
                             f'and {tuple(sample_feats.shape)}.')
        m = anchor_feats.shape[0]
        anchor_depths = anchor_depths.reshape(-1)
        sample_depths = sample_depths.reshape(-1)
        if anchor_depths.shape[0] != m or sample_depths.shape[0] != m:
            raise ValueError(f'anchor_depths and sample_depths must have '
                             f'shape ({m},), got '
                             f'{tuple(anchor_depths.shape)} and '
                             f'{tuple(sample_depths.shape)}.')
        with torch.autocast(
                device_type=anchor_feats.device.type, enabled=False):
            fa = anchor_feats.float()
            fs = sample_feats.float()
            za = anchor_depths.to(device=fa.device, dtype=torch.float32)
            zs = sample_depths.to(device=fa.device, dtype=torch.float32)
            valid = (
                torch.isfinite(za) & torch.isfinite(zs) & (za > 0) & (zs > 0)
                & torch.isfinite(fa).all(dim=1)
                & torch.isfinite(fs).all(dim=1))
            fa, fs, za, zs = fa[valid], fs[valid], za[valid], zs[valid]
            total = (fa.sum() + fs.sum()) * 0.0
            if fa.shape[0] == 0:
                return total

            delta = (za - zs).abs()
            if self.relative:
                delta = delta / torch.minimum(za, zs)
            dist = (fa - fs).pow(2).sum(dim=1).clamp(
                min=_MIN_SQ_DIST).sqrt()

            pos = delta <= self.pos_radius
            if bool(pos.any()):
                total = total + dist[pos].mean()
            uppers = self.neg_bounds[1:] + (math.inf, )
            for low, high, margin in zip(self.neg_bounds, uppers,
                                         self.margins):
                neg = (delta > low) & (delta <= high)
                if bool(neg.any()):
                    total = total + (margin - dist[neg]).clamp(min=0).mean()
            return self.loss_weight * total

    def forward_all_pairs(self, descriptors: Tensor, depths: Tensor) -> Tensor:
        """Loss over all pairs ``i < j`` of N object descriptors.

        Memory is O(N^2 * C); meant for the few objects of a batch.

        Args:
            descriptors (Tensor): Object descriptors, shape (N, C).
            depths (Tensor): Object depths in metres, shape (N,).

        Returns:
            Tensor: Scalar float32 loss (zero, attached, when N < 2).
        """
        depths = check_object_inputs(descriptors, depths)
        i, j = torch.triu_indices(
            descriptors.shape[0],
            descriptors.shape[0],
            offset=1,
            device=descriptors.device)
        return self(descriptors[i], descriptors[j], depths[i], depths[j])


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
