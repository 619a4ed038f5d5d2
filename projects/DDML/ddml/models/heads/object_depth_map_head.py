"""Object depth map head: a training-only auxiliary head.

The head predicts, at every cell of one feature map of the detector, the
depth of the object seen there together with a log-variance (aleatoric
uncertainty, Laplacian likelihood). Its target is the object depth map
painted from the ground-truth 2D boxes and depths
(:func:`ddml.models.targets.paint_batch_depth_targets`) within the head's
own depth range; cells outside every box are ignored.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmdet3d.registry import MODELS
from ..defaults import MAX_DEPTH, MIN_DEPTH
from ..targets import Stride, paint_batch_depth_targets

__all__ = ['ObjectDepthMapHead']


@MODELS.register_module()
class ObjectDepthMapHead(BaseModule):
    """Auxiliary head regressing a dense object depth map (training only).

    ``Conv3x3(C -> feat_channels) + ReLU + Conv1x1(feat_channels -> 2)``
    giving a depth logit ``x`` and a log-variance ``s`` per cell. The depth
    is decoded as ``1 / (sigmoid(x) + 1e-6) - 1`` metres and trained with
    ``sqrt(2) * exp(-s) * |d_hat - d| + s`` averaged over the cells covered
    by an object box (background ignored).

    Args:
        in_channels (int): Channels of the feature map the head reads.
        feat_channels (int): Hidden channels. Defaults to 256.
        loss_weight (float): Weight of ``loss_obj_depth``. Defaults to 1.0.
        min_depth (float): Objects nearer than this (metres) are not painted
            into the target. Defaults to ``defaults.MIN_DEPTH``.
        max_depth (float): Objects farther than this (metres) are not
            painted into the target. Defaults to ``defaults.MAX_DEPTH``.
        init_std (float): Std of the normal init of both convs (biases 0).
            Defaults to 0.001.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to a normal init of both convs with ``init_std``.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int = 256,
                 loss_weight: float = 1.0,
                 min_depth: float = MIN_DEPTH,
                 max_depth: float = MAX_DEPTH,
                 init_std: float = 0.001,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = dict(
                type='Normal', layer='Conv2d', std=init_std, bias=0.)
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError('ObjectDepthMapHead: in_channels must be a '
                             f'positive int, got {in_channels!r}')
        if not min_depth < max_depth:
            raise ValueError(
                f'ObjectDepthMapHead: min_depth ({min_depth}) must be '
                f'smaller than max_depth ({max_depth}) (metres)')
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.loss_weight = loss_weight
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pred = nn.Conv2d(feat_channels, 2, 1)
        # Same init as init_cfg, also when init_weights() is never called.
        for conv in (self.conv, self.pred):
            nn.init.normal_(conv.weight, 0., init_std)
            nn.init.constant_(conv.bias, 0.)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Predict depth logits and log-variances.

        Args:
            x (Tensor): Feature map, shape (B, C, H, W).

        Returns:
            tuple[Tensor, Tensor]: Depth logits and log-variances, each of
            shape (B, 1, H, W).
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'ObjectDepthMapHead got a feature map with {x.shape[1]} '
                f'channels but in_channels={self.in_channels}; set '
                f'depth_map_head.in_channels={x.shape[1]}')
        out = self.pred(self.relu(self.conv(x)))
        return out[:, 0:1], out[:, 1:2]

    @staticmethod
    def decode_depth(depth_logits: Tensor) -> Tensor:
        """Depth in metres from logits: ``1 / (sigmoid(x) + 1e-6) - 1``."""
        return 1. / (depth_logits.sigmoid() + 1e-6) - 1.

    def get_targets(self, batch_data_samples: Sequence,
                    feat_hw: Sequence[int], stride: Stride,
                    device: Optional[torch.device] = None) -> Tensor:
        """The object depth map of the objects in the head's depth range.

        Args:
            batch_data_samples (Sequence[:obj:`Det3DDataSample`]): Ground
                truth, see :func:`ddml.models.targets.
                paint_batch_depth_targets`.
            feat_hw (Sequence[int]): Height and width of the map.
            stride (float | tuple[float, float]): Stride (y, x) of the map
                relative to the batch input, in pixels.
            device (torch.device, optional): Device of the result.

        Returns:
            Tensor: Targets in metres, shape (B, H, W), 0 on background.
        """
        return paint_batch_depth_targets(batch_data_samples, feat_hw, stride,
                                         self.min_depth, self.max_depth,
                                         device)

    def loss_by_feat(self, depth_logits: Tensor, log_vars: Tensor,
                     targets: Tensor) -> Dict[str, Tensor]:
        """Uncertainty-weighted L1 loss over the painted cells (float32).

        Args:
            depth_logits (Tensor): Shape (B, 1, H, W).
            log_vars (Tensor): Shape (B, 1, H, W).
            targets (Tensor): Shape (B, H, W), metres, 0 = ignore.

        Returns:
            dict[str, Tensor]: ``loss_obj_depth``, a scalar; zero (attached
            to the head's outputs) when no cell is painted.
        """
        device_type = depth_logits.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            depth_logits = depth_logits.float()[:, 0]
            log_vars = log_vars.float()[:, 0]
            targets = targets.to(depth_logits.device, torch.float32)
            if targets.shape != depth_logits.shape:
                raise ValueError(
                    f'targets of shape {tuple(targets.shape)} for '
                    f'predictions of shape {tuple(depth_logits.shape)} '
                    '(B, H, W)')
            valid = targets > 0
            if not bool(valid.any()):
                zero = (depth_logits.sum() + log_vars.sum()) * 0. + 0.
                return dict(loss_obj_depth=zero)
            pred = self.decode_depth(depth_logits[valid])
            log_var = log_vars[valid]
            loss = math.sqrt(2.) * torch.exp(-log_var) * \
                (pred - targets[valid]).abs() + log_var
            return dict(loss_obj_depth=self.loss_weight * loss.mean())

    def loss(self, x: Tensor, batch_data_samples: Sequence,
             stride: Stride) -> Dict[str, Tensor]:
        """Forward the head and compute its loss on its own targets.

        ``DepthDiscriminativeDetector.loss_auxiliary`` calls this; the
        convolutions run under the ambient autocast, the loss in float32.

        Args:
            x (Tensor): Feature map, shape (B, C, H, W).
            batch_data_samples (Sequence[:obj:`Det3DDataSample`]): Ground
                truth, see :meth:`get_targets`.
            stride (float | tuple[float, float]): Stride (y, x) of ``x``
                relative to the batch input, in pixels.

        Returns:
            dict[str, Tensor]: ``loss_obj_depth``.
        """
        targets = self.get_targets(batch_data_samples, x.shape[-2:], stride,
                                   x.device)
        return self.loss_by_feat(*self(x), targets)
