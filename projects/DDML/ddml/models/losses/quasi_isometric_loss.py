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
from typing import Optional, Tuple

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


def _pair_block(feats: Tensor, depths: Tensor, start: int, stop: int,
                eps: float,
                detach_target: bool) -> Tuple[Tensor, Tensor]:
    """Distances of the neighbourhood pairs whose first index is a block row.

    Only pairs ``(i, j)`` with ``start <= i < stop`` and ``j > i`` are
    considered, so the block has ``(stop - start) x (N - start - 1)``
    candidate pairs.

    Args:
        feats (Tensor): Descriptors, shape (N, C), float32, finite.
        depths (Tensor): Depths in metres, shape (N,), float32, finite.
        start (int): First row of the block.
        stop (int): One past the last row of the block.
        eps (float): Neighbourhood radius in metres.
        detach_target (bool): Whether the second descriptor of a pair is
            detached from the graph.

    Returns:
        tuple[Tensor, Tensor]: ``e`` descriptor distances and ``d`` depth
        differences (metres) of the block's neighbourhood pairs, both of
        shape (P_block,).
    """
    rows = feats[start:stop]
    cols = feats[start + 1:]
    if detach_target:
        cols = cols.detach()
    row_idx = torch.arange(start, stop, device=feats.device)
    col_idx = torch.arange(start + 1, feats.shape[0], device=feats.device)
    d_all = (depths[start:stop, None] - depths[None, start + 1:]).abs()
    mask = ((col_idx[None, :] > row_idx[:, None]) & (d_all > 0)
            & (d_all <= eps))
    # Squared distances through the Gram matrix: O(rows x cols) memory
    # instead of O(rows x cols x C) for explicit differences.
    sq = (rows.pow(2).sum(1)[:, None] + cols.pow(2).sum(1)[None, :] -
          2.0 * rows @ cols.t())
    e = sq[mask].clamp(min=_MIN_SQ_DIST).sqrt()
    return e, d_all[mask]


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
            block at a time). The value equals the unchunked one. Defaults
            to None (one block).
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
            if self.mode == 'hinge':
                value = self._hinge(feats, z)
            else:
                value = self._official(feats, z)
            if value is None or not torch.isfinite(value):
                return zero
            return self.loss_weight * value

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def _blocks(self, n: int):
        """Row ranges ``[start, stop)`` of the blocks (last row has no
        pair with ``j > i`` and is skipped)."""
        step = self.chunk_size or n
        return [(s, min(s + step, n - 1)) for s in range(0, n - 1, step)]

    def _run_block(self, fn, *args):
        """Run ``fn`` on a block, checkpointed when chunking is on."""
        if self.chunk_size is not None and torch.is_grad_enabled() and any(
                isinstance(a, Tensor) and a.requires_grad for a in args):
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _hinge(self, feats: Tensor, z: Tensor) -> Optional[Tensor]:
        """Mean hinge violation over P, or None when P is empty."""

        def block(f: Tensor, d: Tensor, start: int,
                  stop: int) -> Tuple[Tensor, int]:
            e, dist = _pair_block(f, d, start, stop, self.eps,
                                     self.detach_target)
            upper = (e - self.K * dist - self.B).clamp(min=0)
            lower = (dist / self.K - self.B - e).clamp(min=0)
            return (upper + lower).sum(), e.numel()

        total, count = None, 0
        for start, stop in self._blocks(feats.shape[0]):
            s, c = self._run_block(block, feats, z, start, stop)
            total = s if total is None else total + s
            count += c
        if count == 0:
            return None
        return total / count

    def _official(self, feats: Tensor, z: Tensor) -> Optional[Tensor]:
        """The authors' released form, or None when U or L is empty."""
        T = self.temperature

        def lower_block(f: Tensor, d: Tensor, start: int,
                        stop: int) -> Tuple[Tensor, int]:
            e, dist = _pair_block(f, d, start, stop, self.eps,
                                     self.detach_target)
            lo = dist / self.K - e - self.B
            lo = lo[lo > 0]
            return torch.exp(-lo / T).sum(), lo.numel()

        def upper_block(f: Tensor, d: Tensor, S: Tensor, start: int,
                        stop: int) -> Tuple[Tensor, int]:
            e, dist = _pair_block(f, d, start, stop, self.eps,
                                     self.detach_target)
            up = e - self.K * dist - self.B
            up = up[up > 0]
            p = torch.exp(-up / T)
            return (-torch.log(p / (p + S))).sum(), up.numel()

        blocks = self._blocks(feats.shape[0])
        # Pass 1: S is a sum over all of L, so it needs every block.
        S, num_lower = None, 0
        for start, stop in blocks:
            s, c = self._run_block(lower_block, feats, z, start, stop)
            S = s if S is None else S + s
            num_lower += c
        if num_lower == 0:
            return None
        # Pass 2: mean over U of -log(p / (p + S)).
        total, num_upper = None, 0
        for start, stop in blocks:
            s, c = self._run_block(upper_block, feats, z, S, start, stop)
            total = s if total is None else total + s
            num_upper += c
        if num_upper == 0:
            return None
        return total / num_upper
