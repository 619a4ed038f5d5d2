"""Multi-range depth metric loss (MetricDepth).

The loss is a contrastive metric loss whose negatives are split into
depth-difference ranges with their own margins, after MetricDepth
(Liu, Yang, Zuo, Zang, "MetricDepth: Enhancing Monocular Depth Estimation
with Deep Metric Learning"). It compares pairs of object descriptors
(:meth:`MultiRangeDepthMetricLoss.forward_all_pairs`) or pairs of feature
cells formed by shifting a feature map (MetricDepth, figure 3;
:meth:`MultiRangeDepthMetricLoss.forward_shifted_pairs` with
:func:`ddml.models.targets.collect_shifted_pairs`).
"""
import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmdet3d.registry import MODELS

from ..targets import collect_shifted_pairs
from .utils import check_object_inputs

__all__ = ['MultiRangeDepthMetricLoss']

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
        if any(b >= c for b, c in zip(
                neg_bounds[:-1], neg_bounds[1:], strict=True)):
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
                                         self.margins, strict=True):
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

    def forward_shifted_pairs(
        self,
        feats: Tensor,
        depth: Tensor,
        unit_size: int = 1,
        shifts: Sequence[Tuple[int, int]] = ((-2, -1), ),
        cross_image: bool = True,
    ) -> Tensor:
        """Loss over the cells of a feature map paired by shifting it.

        Args:
            feats (Tensor): Feature map, shape (B, C, H, W).
            depth (Tensor): Object depth map in metres, shape (B, H, W);
                entries <= 0 (background) or not finite are not paired.
            unit_size (int): Side of a unit in cells. Defaults to 1.
            shifts (Sequence[tuple[int, int]]): Shifts ``(dx, dy)`` in
                units. Defaults to ``((-2, -1),)``.
            cross_image (bool): Also pair units across consecutive images.
                Defaults to True.

        Returns:
            Tensor: Scalar float32 loss (zero, attached, when there is no
            pair); see :func:`ddml.models.targets.collect_shifted_pairs`
            for the pairs.
        """
        return self(*collect_shifted_pairs(feats, depth, unit_size, shifts,
                                           cross_image))
