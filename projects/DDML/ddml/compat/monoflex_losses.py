"""MonoFlex's MultiBin loss (mmdet3d 1.4's ``MultiBinLoss``), fixed.

Upstream behaviour fixed (open-mmlab/mmdetection3d #1652, "monoflex之神坑",
closed without a fix; the code is unchanged in 1.4):
``mmdet3d.models.losses.multibin_loss.multibin_loss`` returns from *inside*
its loop over the bins, so only bin 0 (local yaw within 60 degrees of 0)
contributes:

* the bin classification of bins 1-3 is never trained (and the returned
  value divides bin 0's cross-entropy by ``num_dir_bins``);
* the in-bin (sin, cos) residuals of bins 1-3 are never trained, so every
  object facing sideways or away decodes with an untrained offset;
* a batch with no object in bin 0 divides the integer 0 by ``reg_cnt = 0``:
  ``ZeroDivisionError`` stops the training (likely with small batches: on
  the demo's training frames 27 % of the images have no object in bin 0,
  so a batch of 2 hits it every 14 iterations on average); a batch without
  objects at all raises it as well.

MonoFlex's definition (Zhang et al., CVPR 2021, Sec. 3.4; the release
zhangyp15/MonoFlex ``model/head/detector_loss.py``, ``Real_MultiBin_loss``):
the cross-entropy of every bin's 2-way "in this bin" classifier, averaged
over objects and then over the bins, plus the L1 distance between the
normalised (sin, cos) prediction of a bin and the ground-truth offset to
that bin's centre, summed over every (object, bin) pair whose bin holds the
object and divided by the number of such pairs.

:class:`FixedMultiBinLoss` (registered ``FixedMultiBinLoss``) computes that,
gives an exact zero (connected to the graph) for a batch without objects,
and treats a batch whose objects fall in no bin as having no residual term.

When applied: registered at ``import ddml``; configs opt in with
``loss_dir=dict(type='FixedMultiBinLoss', ...)`` (configs/monoflex/ do).
mmdet3d's ``MultiBinLoss`` is left as it is.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet3d.models.losses import MultiBinLoss
from mmdet3d.registry import MODELS

__all__ = ['FixedMultiBinLoss', 'multibin_orientation_loss']


def multibin_orientation_loss(pred: Tensor, target: Tensor,
                              num_dir_bins: int) -> Tensor:
    """MonoFlex's MultiBin loss over all bins (unweighted).

    Args:
        pred (Tensor): (N, 4 * num_dir_bins): ``num_dir_bins`` pairs of
            (not in bin, in bin) logits, then ``num_dir_bins`` pairs of
            (sin, cos) residuals.
        target (Tensor): (N, 2 * num_dir_bins): per bin 1 if the object's
            local yaw lies in the bin (with its margin), else 0; then per
            bin the offset to the bin centre in radians
            (:meth:`mmdet3d.models.task_modules.MonoFlexCoder.encode`).
        num_dir_bins (int): Number of bins.

    Returns:
        Tensor: The scalar loss; 0 (with a gradient of 0) when N is 0.
    """
    nb = int(num_dir_bins)
    if pred.shape[-1] != 4 * nb or target.shape[-1] != 2 * nb:
        raise ValueError(
            f'MultiBin loss with {nb} bins needs predictions of {4 * nb} '
            f'and targets of {2 * nb} channels, got {pred.shape[-1]} and '
            f'{target.shape[-1]}')
    if pred.shape[0] == 0:
        return pred.sum() * 0.
    in_bin = target[:, :nb] > 0.5
    cls = pred.new_zeros(())
    for i in range(nb):
        cls = cls + F.cross_entropy(pred[:, 2 * i:2 * i + 2],
                                    in_bin[:, i].long())
    cls = cls / nb
    residual = pred.new_zeros(())
    count = 0
    for i in range(nb):
        rows = in_bin[:, i]
        if not bool(rows.any()):
            continue
        start = 2 * nb + 2 * i
        sin_cos = F.normalize(pred[rows, start:start + 2], dim=1)
        offset = target[rows, nb + i]
        residual = residual + (sin_cos[:, 0] - torch.sin(offset)).abs().sum() \
            + (sin_cos[:, 1] - torch.cos(offset)).abs().sum()
        count += int(rows.sum())
    return cls + residual / max(count, 1)


@MODELS.register_module()
class FixedMultiBinLoss(MultiBinLoss):
    """mmdet3d's ``MultiBinLoss`` with every bin trained (see the module
    docstring: open-mmlab/mmdetection3d #1652).

    Args:
        reduction (str): Kept for mmdet3d's signature; the loss is always a
            scalar (MonoFlex's normalisation). Defaults to 'none'.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def forward(self,
                pred: Tensor,
                target: Tensor,
                num_dir_bins: int,
                reduction_override: Optional[str] = None) -> Tensor:
        """The weighted MultiBin loss (see
        :func:`multibin_orientation_loss`)."""
        assert reduction_override in (None, 'none', 'mean', 'sum')
        return self.loss_weight * multibin_orientation_loss(
            pred, target, num_dir_bins)
