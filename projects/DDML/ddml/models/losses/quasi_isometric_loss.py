"""Quasi-isometric loss of DDML (Choi, Shin, Im, NeurIPS 2023).

The loss asks the map from object depth to object descriptor to be a
(K, B)-quasi-isometry on a depth neighbourhood: for two objects ``i`` and
``j`` with descriptors ``f`` and depths ``z``,

.. math::

    \\frac{1}{K} d_{ij} - B \\le e_{ij} \\le K d_{ij} + B,
    \\qquad e_{ij} = \\lVert f_i - f_j \\rVert_2,\\;
    d_{ij} = \\lvert z_i - z_j \\rvert .

Reference: W. Choi, M. Shin, S. Im, "Depth-discriminative Metric Learning
for Monocular 3D Object Detection", NeurIPS 2023.
"""
import logging
import math
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mmdet3d.registry import MODELS

# Floor of a squared distance before the square root: keeps the gradient
# of the norm finite (zero) when two descriptors coincide.
_MIN_SQ_DIST = 1e-12

_MODES = ('hinge', 'official')


# Row blocks used when ``chunk_size`` is None (no checkpointing): small
# enough for the cache and for skipping pairs outside the neighbourhood.
_DEFAULT_BLOCK_ROWS = 128


def _sq_dists(rows: Tensor, cols: Tensor) -> Tensor:
    """Squared Euclidean distances through the Gram matrix.

    Args:
        rows (Tensor): Shape (R, C).
        cols (Tensor): Shape (Q, C).

    Returns:
        Tensor: Shape (R, Q); O(R x Q) memory instead of O(R x Q x C) for
        explicit differences. May be slightly negative from rounding.
    """
    sq = torch.addmm(cols.pow(2).sum(1)[None, :], rows, cols.t(), alpha=-2.0)
    return sq + rows.pow(2).sum(1)[:, None]


def _pair_block(feats: Tensor, depths: Tensor, order: Tensor, start: int,
                stop: int, hi: int, eps: float,
                detach_target: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Dense distances of one block of pairs of depth-sorted objects.

    Objects are sorted by depth, so the neighbours ``j > i`` of the rows
    ``start <= i < stop`` all lie in the columns ``start < j < hi``.

    Args:
        feats (Tensor): Descriptors sorted by depth, shape (N, C), float32,
            finite.
        depths (Tensor): Sorted depths in metres, shape (N,), float32.
        order (Tensor): Original row index of each sorted object, (N,).
        start (int): First row of the block.
        stop (int): One past the last row of the block.
        hi (int): One past the last column that can be a neighbour.
        eps (float): Neighbourhood radius in metres.
        detach_target (bool): Detach the descriptor of the pair member
            with the larger original index.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Descriptor distances ``e``, depth
        differences ``d`` (metres) and the neighbourhood mask, each of
        shape (stop - start, hi - start - 1).
    """
    rows = feats[start:stop]
    cols = feats[start + 1:hi]
    d = depths[None, start + 1:hi] - depths[start:stop, None]
    row_idx = torch.arange(start, stop, device=feats.device)
    col_idx = torch.arange(start + 1, hi, device=feats.device)
    mask = (col_idx[None, :] > row_idx[:, None]) & (d > 0) & (d <= eps)
    if detach_target:
        # e_ij = ||f_i - stopgrad(f_j)|| for original indices i < j.
        row_first = order[start:stop, None] < order[None, start + 1:hi]
        sq = torch.where(row_first, _sq_dists(rows, cols.detach()),
                         _sq_dists(rows.detach(), cols))
    else:
        sq = _sq_dists(rows, cols)
    e = sq.clamp(min=_MIN_SQ_DIST).sqrt()
    return e, d, mask


@MODELS.register_module()
class QuasiIsometricLoss(nn.Module):
    """Quasi-isometric loss between object descriptors and object depths.

    For every pair of objects ``i < j`` in the depth neighbourhood
    ``P = {(i, j): 0 < d_ij <= eps}`` the loss penalises violations of

    ``d_ij / K - B <= e_ij <= K * d_ij + B``

    where ``e_ij = ||f_i - f_j||_2`` (descriptor distance, descriptor
    units) and ``d_ij = |z_i - z_j|`` (metres). Pairs at equal depth
    (``d_ij = 0``) and pairs further apart than ``eps`` are not in ``P``.

    Two forms are available:

    - ``mode='hinge'`` (default):
      ``loss_weight / |P| * sum_P [max(0, e_ij - K d_ij - B)
      + max(0, d_ij / K - B - e_ij)]``. Minimising it pulls pairs that are
      too far apart in descriptor space closer and pushes pairs that are
      too close apart, i.e. it enforces both bounds.
    - ``mode='official'`` reproduces the authors' released code. With
      ``u_ij = e_ij - K d_ij - B`` and ``l_ij = d_ij / K - e_ij - B``,
      ``U = {(i, j) in P: u_ij > 0}``, ``L = {(i, j) in P: l_ij > 0}``,
      ``p_ij = exp(-u_ij / T)`` and ``S = sum_L exp(-l_ij / T)``, the value
      is ``loss_weight * mean_U -log(p_ij / (p_ij + S))`` (zero when ``U``
      or ``L`` is empty or the value is not finite). The release used
      ``K=1.5, B=0.5, eps=10, temperature=10, loss_weight=0.5,
      detach_target=True``. **Caveat:** ``S`` grows when ``l_ij``
      shrinks, so minimising this form *increases* ``l_ij``, i.e. it pulls
      the lower-bound violators (pairs already too close in descriptor
      space) even closer together, the opposite of the lower bound. This
      is why ``hinge`` is the default; ``official`` is kept to reproduce
      the published numbers.

    Non-finite rows (a non-finite depth or any non-finite descriptor
    entry) are dropped before the pairs are formed; their number is
    logged and accumulated in :attr:`num_dropped_rows`.

    The computation always runs in float32 with autocast disabled, so
    fp16/bf16 inputs cannot overflow; the result is a float32 scalar.

    Args:
        K (float): Multiplicative quasi-isometry constant, >= 1.
            Defaults to 1.5.
        B (float): Additive quasi-isometry constant, >= 0, in descriptor
            units. Defaults to 0.5.
        eps (float): Neighbourhood radius in metres, > 0. Defaults to 10.0.
        mode (str): ``'hinge'`` or ``'official'``. Defaults to ``'hinge'``.
        temperature (float): Temperature ``T`` of ``'official'`` mode, > 0.
            Unused by ``'hinge'``. Defaults to 10.0.
        detach_target (bool): If True, ``e_ij = ||f_i - stopgrad(f_j)||``
            for ``i < j``, so only the first descriptor of a pair receives
            gradient. Defaults to False.
        loss_weight (float): Weight of the loss, finite. Defaults to 1.0.
        chunk_size (int, optional): If given, pairs are processed in blocks
            of ``chunk_size`` rows with activation checkpointing, so memory
            is O(chunk_size * N) instead of O(N^2) (backward recomputes one
            block at a time, at about 1.2-1.5x the time). The value equals
            the unchunked one up to float rounding. Defaults to None (no
            checkpointing; memory O(N^2) at most).

    Implementation notes: objects are sorted by depth, so the pairs within
    ``eps`` form a band and blocks skip the pairs further apart. Distances
    use the Gram matrix, ``sqrt(max(|f_i|^2 + |f_j|^2 - 2 f_i.f_j,
    1e-12))``: the gradient is finite everywhere and zero for coinciding
    descriptors (which have no direction to be pushed apart in).
    """

    def __init__(self,
                 K: float = 1.5,
                 B: float = 0.5,
                 eps: float = 10.0,
                 mode: str = 'hinge',
                 temperature: float = 10.0,
                 detach_target: bool = False,
                 loss_weight: float = 1.0,
                 chunk_size: Optional[int] = None) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}, got {mode!r}; '
                             "use 'hinge' (default) or 'official'.")
        if not (math.isfinite(K) and K >= 1):
            raise ValueError(f'K must be a finite number >= 1 (a '
                             f'quasi-isometry constant), got {K}; '
                             'use e.g. K=1.5.')
        if not (math.isfinite(B) and B >= 0):
            raise ValueError(f'B must be a finite number >= 0, got {B}; '
                             'use e.g. B=0.5.')
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f'eps must be a finite positive radius in '
                             f'metres, got {eps}; use e.g. eps=10.0.')
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f'temperature must be a finite number > 0, '
                             f'got {temperature}; use e.g. 10.0.')
        if not math.isfinite(loss_weight):
            raise ValueError(f'loss_weight must be finite, got '
                             f'{loss_weight}.')
        if chunk_size is not None and (isinstance(chunk_size, bool)
                                       or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ValueError(f'chunk_size must be None or a positive int '
                             f'(rows per block), got {chunk_size!r}.')
        self.K = float(K)
        self.B = float(B)
        self.eps = float(eps)
        self.mode = mode
        self.temperature = float(temperature)
        self.detach_target = bool(detach_target)
        self.loss_weight = float(loss_weight)
        self.chunk_size = chunk_size
        self.num_dropped_rows = 0

    def extra_repr(self) -> str:
        return (f'K={self.K}, B={self.B}, eps={self.eps}, mode={self.mode!r}, '
                f'temperature={self.temperature}, '
                f'detach_target={self.detach_target}, '
                f'loss_weight={self.loss_weight}, '
                f'chunk_size={self.chunk_size}')

    def forward(self, descriptors: Tensor, depths: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            descriptors (Tensor): Object descriptors, shape (N, C), any
                float dtype.
            depths (Tensor): Object depths in metres, shape (N,).

        Returns:
            Tensor: Scalar float32 loss. Zero, still attached to the graph
            of ``descriptors``, when there is nothing to penalise.
        """
        if descriptors.dim() != 2:
            raise ValueError(f'descriptors must have shape (N, C), got '
                             f'{tuple(descriptors.shape)}.')
        depths = depths.reshape(-1)
        if depths.shape[0] != descriptors.shape[0]:
            raise ValueError(f'depths must have one entry per descriptor '
                             f'row: got {depths.shape[0]} depths for '
                             f'{descriptors.shape[0]} descriptors.')
        with torch.autocast(
                device_type=descriptors.device.type, enabled=False):
            feats = descriptors.float()
            z = depths.to(device=feats.device, dtype=torch.float32)
            keep = torch.isfinite(z) & torch.isfinite(feats).all(dim=1)
            num_dropped = int((~keep).sum())
            if num_dropped:
                self.num_dropped_rows += num_dropped
                print_log(
                    f'QuasiIsometricLoss: dropped {num_dropped} of '
                    f'{keep.numel()} rows with a non-finite depth or '
                    f'descriptor ({self.num_dropped_rows} so far).',
                    logger='current',
                    level=logging.WARNING)
                feats = feats[keep]
                z = z[keep]
            zero = feats.sum() * 0.0
            if feats.shape[0] < 2:
                return zero
            # Distances are translation invariant: centring on a constant
            # (detached) mean reduces cancellation in the Gram formula
            # without changing values or gradients.
            feats = feats - feats.detach().mean(dim=0, keepdim=True)
            # Sorting by depth turns the neighbourhood into a band, so
            # blocks skip the pairs further apart than eps.
            z, order = torch.sort(z, stable=True)
            feats = feats[order]
            if self.mode == 'hinge':
                value = self._hinge(feats, z, order)
            else:
                value = self._official(feats, z, order)
            if value is None or not torch.isfinite(value):
                return zero
            return self.loss_weight * value

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def _blocks(self, depths: Tensor) -> List[Tuple[int, int, int]]:
        """Blocks ``(start, stop, hi)`` of rows ``[start, stop)`` and the
        column bound ``hi`` of their neighbours, for sorted ``depths``."""
        n = depths.shape[0]
        step = self.chunk_size or _DEFAULT_BLOCK_ROWS
        starts = list(range(0, n - 1, step))
        stops = [min(s + step, n - 1) for s in starts]
        # Columns beyond depth[stop - 1] + eps hold no neighbour of a row
        # (with a relative margin against rounding; the block mask applies
        # the exact test).
        last = depths[torch.tensor(stops, device=depths.device) - 1]
        bound = last + self.eps + (last.abs() + self.eps) * 1e-6
        his = torch.searchsorted(depths, bound, right=True).tolist()
        return list(zip(starts, stops, his))

    def _run_block(self, fn: Callable, *args) -> Tuple[Tensor, ...]:
        """Run ``fn`` on a block, checkpointed when chunking is on."""
        if self.chunk_size is not None and torch.is_grad_enabled() and any(
                isinstance(a, Tensor) and a.requires_grad for a in args):
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _thresholds(self, d: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Upper bound ``K d + B`` and lower bound ``d / K - B`` per pair;
        +inf / -inf outside the neighbourhood, so no term is positive
        there."""
        upper = torch.where(mask, d * self.K + self.B, math.inf)
        lower = torch.where(mask, d / self.K - self.B, -math.inf)
        return upper, lower

    def _hinge(self, feats: Tensor, z: Tensor,
               order: Tensor) -> Optional[Tensor]:
        """Mean hinge violation over P, or None when P is empty."""

        def block(f: Tensor, start: int, stop: int,
                  hi: int) -> Tuple[Tensor, Tensor]:
            e, d, mask = _pair_block(f, z, order, start, stop, hi, self.eps,
                                     self.detach_target)
            upper, lower = self._thresholds(d, mask)
            value = ((e - upper).clamp(min=0).sum() +
                     (lower - e).clamp(min=0).sum())
            return value, mask.sum()

        total, count = [], []
        for start, stop, hi in self._blocks(z):
            s, c = self._run_block(block, feats, start, stop, hi)
            total.append(s)
            count.append(c)
        count = int(torch.stack(count).sum()) if count else 0
        if count == 0:
            return None
        return torch.stack(total).sum() / count

    def _official(self, feats: Tensor, z: Tensor,
                  order: Tensor) -> Optional[Tensor]:
        """The authors' released form, or None when U or L is empty."""
        T = self.temperature

        def violations(f: Tensor, start: int, stop: int,
                       hi: int) -> Tuple[Tensor, Tensor]:
            """u_ij and l_ij of a block (-inf outside the neighbourhood)."""
            e, d, mask = _pair_block(f, z, order, start, stop, hi, self.eps,
                                     self.detach_target)
            upper, lower = self._thresholds(d, mask)
            return e - upper, lower - e

        # Outside L (resp. U) the violation is clamped to 0 before exp, so
        # no exp(+inf) can reach the backward pass (a NaN gradient through
        # torch.where); torch.where then drops those entries.
        def lower_terms(l_ij: Tensor) -> Tuple[Tensor, Tensor]:
            in_l = l_ij > 0
            terms = torch.exp(l_ij.clamp(min=0) * (-1.0 / T))
            return torch.where(in_l, terms, 0.0).sum(), in_l.sum()

        def upper_terms(u_ij: Tensor, S: Tensor) -> Tuple[Tensor, Tensor]:
            in_u = u_ij > 0
            p = torch.exp(u_ij.clamp(min=0) * (-1.0 / T))
            terms = -torch.log(p / (p + S))
            return torch.where(in_u, terms, 0.0).sum(), in_u.sum()

        blocks = self._blocks(z)
        if self.chunk_size is not None:
            return self._official_chunked(violations, lower_terms,
                                          upper_terms, feats, blocks)
        # Keep each block's violations for both passes.
        cached = [violations(feats, *b) for b in blocks]
        # Pass 1: S is a sum over all of L, so it needs every block.
        sums, counts = zip(*[lower_terms(l_ij) for _, l_ij in cached])
        if int(torch.stack(counts).sum()) == 0:
            return None
        S = torch.stack(sums).sum()
        # Pass 2: mean over U of -log(p / (p + S)).
        sums, counts = zip(*[upper_terms(u_ij, S) for u_ij, _ in cached])
        num_upper = int(torch.stack(counts).sum())
        if num_upper == 0:
            return None
        return torch.stack(sums).sum() / num_upper

    def _official_chunked(self, violations: Callable, lower_terms: Callable,
                          upper_terms: Callable, feats: Tensor,
                          blocks: List[Tuple[int, int, int]]
                          ) -> Optional[Tensor]:
        """'official' form with one checkpointed block alive at a time.

        ``S`` is global, so its value comes from a first pass without
        gradient. The second pass computes, per block, the U terms with
        ``S`` held constant, the block's part of ``S`` with gradient and
        ``sum_U 1 / (p + S)``; the gradient through ``S`` is restored with
        ``dA/dS = mean_U 1 / (p + S)`` (A being the mean over U), so the
        backward pass recomputes each block once.
        """
        T = self.temperature
        with torch.no_grad():
            lows = [lower_terms(violations(feats, *b)[1]) for b in blocks]
        if sum(int(c) for _, c in lows) == 0:
            return None
        S = torch.stack([s for s, _ in lows]).sum()

        def block(f: Tensor, start: int, stop: int,
                  hi: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
            u_ij, l_ij = violations(f, start, stop, hi)
            up_sum, up_count = upper_terms(u_ij, S)
            with torch.no_grad():
                p = torch.exp(u_ij.clamp(min=0) * (-1.0 / T))
                inv = torch.where(u_ij > 0, 1.0 / (p + S), 0.0).sum()
            return up_sum, up_count, inv, lower_terms(l_ij)[0]

        up_sums, up_counts, invs, low_sums = zip(
            *[self._run_block(block, feats, *b) for b in blocks])
        num_upper = int(torch.stack(up_counts).sum())
        if num_upper == 0:
            return None
        value = torch.stack(up_sums).sum() / num_upper
        grad_S = torch.stack(invs).sum() / num_upper
        S_attached = torch.stack(low_sums).sum()
        # Zero in value; carries grad_S * dS/df in the backward pass.
        return value + grad_S * (S_attached - S_attached.detach())
