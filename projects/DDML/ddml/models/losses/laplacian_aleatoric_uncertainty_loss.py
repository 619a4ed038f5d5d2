"""Laplacian aleatoric uncertainty loss (MonoDLE's depth loss)."""
import math
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmdet3d.registry import MODELS

__all__ = ['LaplacianAleatoricUncertaintyLoss']


@MODELS.register_module()
class LaplacianAleatoricUncertaintyLoss(nn.Module):
    """Negative log-likelihood of a Laplacian with predicted scale.

    For a prediction ``d`` with predicted log standard deviation
    ``s = log(sigma)`` and a target ``d*``, the Laplace density with
    standard deviation ``sigma`` (scale ``b = sigma / sqrt(2)``) has the
    negative log-likelihood, up to a constant,

    .. math::

        L = \\frac{\\sqrt{2}}{\\sigma} |d - d^*| + \\log \\sigma
          = \\sqrt{2}\\, e^{-s} |d - d^*| + s .

    This is the depth loss of MonoDLE (Ma et al., CVPR 2021), which takes it
    from MonoPair (Chen et al., CVPR 2020) and Kendall & Gal (NeurIPS 2017)
    (release: ``lib/losses/uncertainty_loss.py``, which writes the constant
    as 1.4142). Objects the network is unsure about (large ``s``) are
    down-weighted at the price of the ``+ s`` term; ``exp(-s)`` serves as
    the depth confidence at inference.

    Args:
        reduction (str): ``'mean'`` (over elements, the release's) ,
            ``'sum'`` or ``'none'``. Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError("LaplacianAleatoricUncertaintyLoss.reduction "
                             "must be 'mean', 'sum' or 'none', got "
                             f'{reduction!r}')
        self.reduction = reduction
        self.loss_weight = float(loss_weight)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                log_sigma: Tensor,
                avg_factor: Optional[float] = None) -> Tensor:
        """Loss of ``pred`` against ``target``.

        Args:
            pred (Tensor): Predictions ``d`` (e.g. depths in metres).
            target (Tensor): Targets ``d*``, same shape.
            log_sigma (Tensor): Predicted ``s = log(sigma)``, same shape.
            avg_factor (float, optional): Divide the sum by this instead of
                the number of elements (``reduction='mean'`` only).

        Returns:
            Tensor: The weighted loss; a zero attached to the inputs when
            there is no element and the reduction is not ``'none'``.
        """
        if pred.shape != target.shape or pred.shape != log_sigma.shape:
            raise ValueError(
                'pred, target and log_sigma must have one shape, got '
                f'{tuple(pred.shape)}, {tuple(target.shape)} and '
                f'{tuple(log_sigma.shape)}')
        loss = math.sqrt(2.) * torch.exp(-log_sigma) * (
            pred - target).abs() + log_sigma
        if self.reduction == 'none':
            return self.loss_weight * loss
        if loss.numel() == 0:
            return (pred.sum() + log_sigma.sum()) * 0.
        if self.reduction == 'sum':
            return self.loss_weight * loss.sum()
        denom = loss.numel() if avg_factor is None else avg_factor
        return self.loss_weight * loss.sum() / denom
