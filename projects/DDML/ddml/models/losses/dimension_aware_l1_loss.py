"""Dimension-aware L1 loss: MonoDLE's IoU-oriented 3D size loss."""
import torch
import torch.nn as nn
from torch import Tensor

from mmdet3d.registry import MODELS

__all__ = ['DimensionAwareL1Loss']


@MODELS.register_module()
class DimensionAwareL1Loss(nn.Module):
    """L1 loss on 3D sizes, each side weighted by the inverse of its length.

    MonoDLE (Ma et al., CVPR 2021, "IoU oriented optimization") observes
    that the 3D IoU of a box depends on the *relative* error of each side,
    so a plain L1 loss over-weights the long sides (a car's length) and
    under-weights the short ones. Its size loss divides each side's error
    by the ground-truth length of that side and rescales the result by a
    compensation weight ``c`` (no gradient) so that its value equals the
    plain L1 loss:

    .. math::

        L = c \\cdot \\frac{1}{3N} \\sum_{i,k}
            \\frac{|s_{ik} - s^*_{ik}|}{s^*_{ik}},
        \\qquad
        c = \\mathrm{sg}\\Big(\\frac{\\frac{1}{3N}\\sum_{i,k}
            |s_{ik} - s^*_{ik}|}{\\frac{1}{3N}\\sum_{i,k}
            |s_{ik} - s^*_{ik}| / s^*_{ik}}\\Big)

    for N objects with predicted and ground-truth sizes ``s, s*`` (metres,
    any order of the three sides). The value is therefore the L1 loss
    while the gradient of side ``k`` of object ``i`` is ``c / s*_ik``
    times that of L1 (release: ``lib/losses/dim_aware_loss.py``).

    Both arguments are absolute sizes. (The release passes its size
    *targets* as the divisor; with its default ``meanshape: False`` those
    are the absolute sizes. With sizes regressed as residuals to a class
    mean, :class:`MonoDLEHead` adds the mean back before calling this loss,
    so the divisor stays the true side length.)

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        eps (float): Floor of the ground-truth side lengths in the
            divisor, metres. Defaults to 1e-3.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-3) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError('DimensionAwareL1Loss.eps must be > 0, got '
                             f'{eps!r}')
        self.loss_weight = float(loss_weight)
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Loss of predicted sizes against ground-truth sizes.

        Args:
            pred (Tensor): Predicted sizes in metres, shape (N, 3).
            target (Tensor): Ground-truth sizes in metres, shape (N, 3).

        Returns:
            Tensor: Scalar loss; zero (attached to ``pred``) when there is
            no object or no error.
        """
        if pred.shape != target.shape:
            raise ValueError('pred and target must have one shape, got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        if pred.numel() == 0:
            return pred.sum() * 0.
        error = (pred - target).abs()
        relative = error / target.detach().clamp(min=self.eps)
        with torch.no_grad():
            rel_mean = relative.mean()
            if not bool(rel_mean > 0):
                return pred.sum() * 0.
            compensation = error.mean() / rel_mean
        return self.loss_weight * compensation * relative.mean()
