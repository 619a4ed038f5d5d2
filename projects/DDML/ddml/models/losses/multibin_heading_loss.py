"""Multi-bin heading loss: bin classification plus in-bin residual."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmdet3d.registry import MODELS

__all__ = ['MultiBinHeadingLoss']


@MODELS.register_module()
class MultiBinHeadingLoss(nn.Module):
    """Cross-entropy over heading bins plus L1 on the ground-truth bin.

    An angle is coded as a bin ``k*`` and a residual ``r*`` within it (see
    :meth:`MonoDLECoder.encode_heading`). For N objects with bin logits
    ``q`` (N, B) and per-bin residuals ``r`` (N, B):

    .. math::

        L = \\frac{1}{N} \\sum_i \\mathrm{CE}(q_i, k^*_i)
          + \\frac{1}{N} \\sum_i |r_{i k^*_i} - r^*_i|

    (MonoDLE with B = 12, after Mousavian et al.'s MultiBin, CVPR 2017;
    release: ``compute_heading_loss`` in ``lib/losses/centernet_loss.py``).

    Args:
        num_bins (int): Number of bins ``B``. Defaults to 12.
        loss_weight (float): Weight of the sum. Defaults to 1.0.
    """

    def __init__(self, num_bins: int = 12, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(num_bins, int) or num_bins < 1:
            raise ValueError('MultiBinHeadingLoss.num_bins must be a '
                             f'positive int, got {num_bins!r}')
        self.num_bins = num_bins
        self.loss_weight = float(loss_weight)

    def forward(self, bin_logits: Tensor, residuals: Tensor,
                target_bins: Tensor, target_residuals: Tensor) -> Tensor:
        """Loss of N heading predictions.

        Args:
            bin_logits (Tensor): Bin logits, shape (N, B).
            residuals (Tensor): Residual of every bin (radians), (N, B).
            target_bins (Tensor): Ground-truth bins (long), shape (N, ).
            target_residuals (Tensor): Ground-truth residuals (radians),
                shape (N, ).

        Returns:
            Tensor: Scalar loss; zero (attached) when N = 0.
        """
        for name, value in (('bin_logits', bin_logits),
                            ('residuals', residuals)):
            if value.dim() != 2 or value.shape[1] != self.num_bins:
                raise ValueError(f'{name} must have shape (N, '
                                 f'{self.num_bins}), got '
                                 f'{tuple(value.shape)}')
        if bin_logits.shape[0] == 0:
            return (bin_logits.sum() + residuals.sum()) * 0.
        target_bins = target_bins.reshape(-1).long()
        cls_loss = F.cross_entropy(bin_logits, target_bins)
        picked = torch.gather(residuals, 1, target_bins[:, None])[:, 0]
        reg_loss = (picked - target_residuals.reshape(-1)).abs().mean()
        return self.loss_weight * (cls_loss + reg_loss)
