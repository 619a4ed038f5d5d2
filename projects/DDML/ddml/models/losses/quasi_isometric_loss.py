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
from typing import Iterator, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmdet3d.registry import MODELS

from ..defaults import QI_B, QI_EPS, QI_K, QI_TEMPERATURE
from .utils import check_object_inputs

__all__ = ['QuasiIsometricLoss']

# Floors of a squared descriptor distance, absolute and relative to
# |f_i|^2 + |f_j|^2: e = sqrt(max(sq, floor)), with zero (finite) gradient
# at the floor, e.g. when two descriptors coincide.
_MIN_SQ_DIST = 1e-12
_GRAM_REL_FLOOR = 1e-6

_MODES = ('hinge', 'official')

# Rows per block when ``chunk_size`` is None: small blocks keep the band of
# neighbours tight (objects are sorted by depth).
_DEFAULT_BLOCK_ROWS = 128


class _Block(NamedTuple):
    """Pairs ``(i, j)``, ``start <= i < stop``, ``start < j < hi`` of
    depth-sorted objects; every tensor has shape (stop - start,
    hi - start - 1)."""
    start: int
    stop: int
    hi: int
    e: Tensor  # descriptor distances
    moving: Tensor  # distance above the rounding floor (has a gradient)
    d: Tensor  # depth differences in metres
    mask: Tensor  # pair in the neighbourhood P
    row_first: Optional[Tensor]  # row has the smaller original index


def _accumulate_grad(grad: Tensor, feats: Tensor, block: _Block,
                     coef: Tensor) -> None:
    """Add ``sum_ij coef_ij * d e_ij / d f`` of a block to ``grad``.

    ``d e_ij / d f_i = (f_i - f_j) / e_ij``; it is taken as zero for
    (nearly) coinciding descriptors (floored distance), which have no
    reliable direction.
    With ``row_first`` set (``detach_target``), only the member of a pair
    with the smaller original index receives its part.

    Args:
        grad (Tensor): Gradient accumulator, shape (N, C), in place.
        feats (Tensor): Depth-sorted descriptors, shape (N, C).
        block (_Block): The block.
        coef (Tensor): ``d value / d e_ij``, zero outside the terms,
            shape of the block.
    """
    w = torch.where(block.moving, coef / block.e, 0.0)
    if block.row_first is None:
        w_rows = w_cols = w
    else:
        w_rows = torch.where(block.row_first, w, 0.0)
        w_cols = w - w_rows
    rows = feats[block.start:block.stop]
    cols = feats[block.start + 1:block.hi]
    grad[block.start:block.stop] += (
        w_rows.sum(1, keepdim=True) * rows - w_rows @ cols)
    grad[block.start + 1:block.hi] += (
        w_cols.sum(0)[:, None] * cols - w_cols.t() @ rows)


class _AttachGrad(torch.autograd.Function):
    """Return a precomputed value whose gradient w.r.t. ``feats`` is a
    precomputed tensor (scaled by the incoming gradient)."""

    @staticmethod
    def forward(ctx, feats: Tensor, value: Tensor, grad: Tensor) -> Tensor:
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> Tuple[Tensor, None, None]:
        grad, = ctx.saved_tensors
        return grad_output * grad, None, None


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
      the constants of :mod:`ddml.models.defaults` (``K``, ``B``,
      ``eps``, ``temperature``) with ``loss_weight=0.5`` and
      ``detach_target=True``. **Caveat:** ``S`` grows when ``l_ij``
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
            Defaults to ``defaults.QI_K``.
        B (float): Additive quasi-isometry constant, >= 0, in descriptor
            units. Defaults to ``defaults.QI_B``.
        eps (float): Neighbourhood radius in metres, > 0. Defaults to
            ``defaults.QI_EPS``.
        mode (str): ``'hinge'`` or ``'official'``. Defaults to ``'hinge'``.
        temperature (float): Temperature ``T`` of ``'official'`` mode, > 0.
            Unused by ``'hinge'``. Defaults to ``defaults.QI_TEMPERATURE``.
        detach_target (bool): If True, ``e_ij = ||f_i - stopgrad(f_j)||``
            for ``i < j``, so only the first descriptor of a pair receives
            gradient. Defaults to False.
        loss_weight (float): Weight of the loss, finite. Defaults to 1.0.
        chunk_size (int, optional): Rows per block of pairs. Blocks are
            processed one at a time without an autograd graph (the
            gradient is accumulated analytically), so memory is
            O(chunk_size * N + N * C). The value does not depend on it
            beyond float rounding. Defaults to None (128 rows, which also
            keeps the band of depth neighbours tight).

    Implementation notes: objects are sorted by depth, so the pairs within
    ``eps`` form a band and blocks skip the pairs further apart. Distances
    use the Gram matrix, ``e = sqrt(max(|f_i|^2 + |f_j|^2 - 2 f_i.f_j,
    floor))`` with ``floor = max(1e-12, 1e-6 (|f_i|^2 + |f_j|^2))`` (the
    float32 rounding of the Gram formula): the gradient is finite
    everywhere and zero at the floor, e.g. for coinciding descriptors,
    which have no direction to be pushed apart in. The gradient w.r.t.
    the descriptors is computed in the forward pass and attached with a
    custom autograd function, so the loss is differentiable once (no
    double backward).
    """

    def __init__(self,
                 K: float = QI_K,
                 B: float = QI_B,
                 eps: float = QI_EPS,
                 mode: str = 'hinge',
                 temperature: float = QI_TEMPERATURE,
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
                             f'use e.g. K={QI_K}.')
        if not (math.isfinite(B) and B >= 0):
            raise ValueError(f'B must be a finite number >= 0, got {B}; '
                             f'use e.g. B={QI_B}.')
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f'eps must be a finite positive radius in '
                             f'metres, got {eps}; use e.g. eps={QI_EPS}.')
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f'temperature must be a finite number > 0, '
                             f'got {temperature}; use e.g. {QI_TEMPERATURE}.')
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
            depths (Tensor): Object depths in metres, shape (N,); treated
                as targets (no gradient flows to them).

        Returns:
            Tensor: Scalar float32 loss. Zero, still attached to the graph
            of ``descriptors``, when there is nothing to penalise.
        """
        depths = check_object_inputs(descriptors, depths)
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
            need_grad = feats.requires_grad and torch.is_grad_enabled()
            with torch.no_grad():
                if self.mode == 'hinge':
                    result = self._hinge(feats.detach(), z, order, need_grad)
                else:
                    result = self._official(feats.detach(), z, order,
                                            need_grad)
            if result is None or not torch.isfinite(result[0]):
                return zero
            value, grad = result
            if need_grad:
                value = _AttachGrad.apply(feats, value, grad)
            return self.loss_weight * value

    # ------------------------------------------------------------------
    # Helpers (run without autograd; the gradient is computed analytically
    # block by block, so memory is O(block rows x N) plus O(N x C))
    # ------------------------------------------------------------------
    def _blocks(self, feats: Tensor, z: Tensor,
                order: Tensor) -> Iterator[_Block]:
        """Blocks of pairs ``i < j`` of depth-sorted objects.

        Args:
            feats (Tensor): Depth-sorted descriptors, shape (N, C).
            z (Tensor): Sorted depths in metres, shape (N,).
            order (Tensor): Original index of each sorted object, (N,).

        Yields:
            _Block: Rows ``[start, stop)`` and the columns ``(start, hi)``
            that can hold their neighbours.
        """
        n = z.shape[0]
        step = self.chunk_size or _DEFAULT_BLOCK_ROWS
        starts = list(range(0, n - 1, step))
        stops = [min(s + step, n - 1) for s in starts]
        # Columns beyond z[stop - 1] + eps hold no neighbour of a row (a
        # relative margin covers rounding; the mask applies the exact test).
        last = z[torch.tensor(stops, device=z.device) - 1]
        bound = last + self.eps + (last.abs() + self.eps) * 1e-6
        his = torch.searchsorted(z, bound, right=True).tolist()
        for start, stop, hi in zip(starts, stops, his, strict=True):
            rows = feats[start:stop]
            cols = feats[start + 1:hi]
            d = z[None, start + 1:hi] - z[start:stop, None]
            mask = (d > 0) & (d <= self.eps)
            # j > i only fails in the leading columns (j < stop).
            lead = min(stop - start - 1, hi - start - 1)
            if lead > 0:
                mask[:, :lead] &= torch.ones(
                    stop - start, lead, dtype=torch.bool,
                    device=z.device).triu()
            rows_sq = rows.pow(2).sum(1)[:, None]
            cols_sq = cols.pow(2).sum(1)[None, :]
            sq = torch.addmm(cols_sq, rows, cols.t(), alpha=-2.0) + rows_sq
            # The Gram formula loses about 1e-7 * (|f_i|^2 + |f_j|^2) to
            # rounding: below that floor a distance (and its direction) is
            # noise, so it is floored and gets no gradient.
            floor = (rows_sq + cols_sq).mul_(_GRAM_REL_FLOOR).clamp_(
                min=_MIN_SQ_DIST)
            moving = sq > floor
            e = torch.maximum(sq, floor).sqrt_()
            row_first = None
            if self.detach_target:
                first = order[start:stop, None]
                row_first = first < order[None, start + 1:hi]
            yield _Block(start, stop, hi, e, moving, d, mask, row_first)

    def _upper(self, block: _Block) -> Tensor:
        """``K d + B`` in P, +inf elsewhere (no term is positive there)."""
        return torch.where(block.mask, block.d * self.K + self.B, math.inf)

    def _lower(self, block: _Block) -> Tensor:
        """``d / K - B`` in P, -inf elsewhere."""
        return torch.where(block.mask, block.d / self.K - self.B, -math.inf)

    def _hinge(self, feats: Tensor, z: Tensor, order: Tensor,
               need_grad: bool) -> Optional[Tuple[Tensor, Tensor]]:
        """Mean hinge violation over P and its gradient w.r.t. ``feats``,
        or None when P is empty."""
        total = feats.new_zeros(())
        count = 0
        grad = torch.zeros_like(feats) if need_grad else None
        for block in self._blocks(feats, z, order):
            over = block.e - self._upper(block)
            under = self._lower(block) - block.e
            total += over.clamp(min=0).sum() + under.clamp(min=0).sum()
            count += int(block.mask.sum())
            if need_grad:
                coef = (over > 0).float() - (under > 0).float()
                _accumulate_grad(grad, feats, block, coef)
        if count == 0:
            return None
        return total / count, (grad / count if need_grad else None)

    def _official(self, feats: Tensor, z: Tensor, order: Tensor,
                  need_grad: bool) -> Optional[Tuple[Tensor, Tensor]]:
        """The authors' released form and its gradient w.r.t. ``feats``,
        or None when U or L is empty.

        With ``A = mean_U a_ij``, ``a_ij = -log(p_ij / (p_ij + S))``:
        ``d a_ij / d e_ij = S / (T (p_ij + S))`` for U,
        ``d S / d e_ij = exp(-l_ij / T) / T`` for L and
        ``d A / d S = mean_U 1 / (p_ij + S)``.
        """
        T = self.temperature
        # Blocks are recomputed in the second pass rather than kept: this
        # bounds memory and costs less than keeping O(N^2) tensors.
        # Pass 1: S is a sum over all of L.
        S = feats.new_zeros(())
        num_lower = 0
        grad_S = torch.zeros_like(feats) if need_grad else None
        for block in self._blocks(feats, z, order):
            l_ij = self._lower(block) - block.e
            in_l = l_ij > 0
            terms = torch.where(in_l, torch.exp(l_ij.clamp(min=0) / -T), 0.0)
            S += terms.sum()
            num_lower += int(in_l.sum())
            if need_grad:
                _accumulate_grad(grad_S, feats, block, terms / T)
        if num_lower == 0:
            return None
        # Pass 2: mean over U of -log(p / (p + S)).
        total = feats.new_zeros(())
        inv_total = feats.new_zeros(())
        num_upper = 0
        grad_U = torch.zeros_like(feats) if need_grad else None
        for block in self._blocks(feats, z, order):
            u_ij = block.e - self._upper(block)
            in_u = u_ij > 0
            p = torch.exp(u_ij.clamp(min=0) / -T)
            total += torch.where(in_u, -torch.log(p / (p + S)), 0.0).sum()
            num_upper += int(in_u.sum())
            if need_grad:
                inv = torch.where(in_u, 1.0 / (p + S), 0.0)
                inv_total += inv.sum()
                _accumulate_grad(grad_U, feats, block, inv * (S / T))
        if num_upper == 0:
            return None
        grad = None
        if need_grad:
            grad = (grad_U + inv_total * grad_S) / num_upper
        return total / num_upper, grad
