"""MonoFlex trains in mmdet3d 1.4: a fixed head and the missing detector.

mmdet3d merged MonoFlex's head, coder and losses in 2022 (Zhang, Lu, Zhou,
"Objects are Different: Flexible Monocular 3D Object Detection", CVPR 2021;
open-mmlab/mmdetection3d PRs #1044, #1114, #1115, #1183) but never shipped a
config (#1273, #1515, #2093, #3022, all open) and warned that "the training
performance is not stable" (PR #1183). In 1.4 ``MonoFlexHead`` cannot train
at all. Upstream behaviour fixed by :class:`FixedMonoFlexHead` (registered
``FixedMonoFlexHead``, a subclass of ``MonoFlexHead`` with its network
unchanged), each in the named method:

* :meth:`~FixedMonoFlexHead.loss` calls itself with the loss inputs
  (``self.loss(*loss_inputs)``: ``TypeError``) and leaves out the 2D ground
  truth; ``get_targets`` unpacks three values from ``get_keypoints``, which
  returns two (``ValueError``); ``loss_by_feat`` reads a
  ``keypoints2d_mask`` target that does not exist (``KeyError``) and a
  ``self.loss_keypoint_depth`` that does not exist (``AttributeError``);
  ``get_predictions`` calls the coder's ``decode`` without its
  ``base_centers2d`` argument, and reads ``preds['offsets_2d']`` where the
  coder writes ``'offsets2d'``. Fixed: one loss path written out
  (:meth:`~FixedMonoFlexHead.loss_by_feat`).
* :meth:`~FixedMonoFlexHead.get_targets`, units and frames: upstream's
  keypoint targets are input pixels relative to the float projected centre
  while the coder's keypoint depth assumes feature cells; its 3D-offset
  targets are input pixels while decoding adds them to feature cells; its
  2D box target is ``(-x1, -y1, x2, y2)`` of the input-pixel box, compared
  by an IoU loss with a cell-frame ``(x1, y1, x2, y2)``; and keypoints are
  projected with ``cam2img`` of the original image while ``centers_2d`` is
  in the resized input. Fixed: every 2D target in feature cells relative to
  the integer heatmap cell, projected with ``trans_mat @ cam2img`` (the
  camera of the feature map), as the release (zhangyp15/MonoFlex,
  ``data/datasets/kitti.py``).
* truncated objects: upstream filters every object whose projected centre
  leaves the image (``filter_outside_objs``; and ``AffineResize`` drops them
  first, see :mod:`ddml.compat.monoflex_transforms`), and its ellipse
  Gaussian for them (``get_ellip_gaussian_2D``) uses ``sigma = diameter //
  6``, i.e. 0 for radii under 3, whose ``0 / 0`` makes the heatmap target
  NaN (and the focal loss with it) for *every* truncated object, whose
  radius across the border is 0 by construction. Fixed: truncated objects
  are kept and represented by the border intersection (paper, Sec. 3.2),
  drawn with ``sigma = diameter / 6`` (:func:`ellip_gaussian_target`), and
  their offsets trained by MonoFlex's separate ``log(1 + L1)`` loss.
* :meth:`~FixedMonoFlexHead.loss_by_feat`, reductions and terms: MonoFlex
  sums the L1 of the 2D/3D offsets, keypoints and sizes over their
  coordinates (upstream averages, i.e. 1/2 and 1/3 of the terms), averages
  the keypoint loss over visible keypoints only (upstream: L1 over all,
  including keypoints outside the image), trains the uncertainties of the
  keypoint depths of *invisible* groups (release
  ``MODIFY_INVALID_KEYPOINT_DEPTH: True``; upstream never does, so the
  combined depth at test time weights those groups by untrained
  uncertainties), and has a corner loss (weight 0.2) that upstream lacks.
  The weights are the release's (``INIT_LOSS_WEIGHT``), not upstream's 0.1
  everywhere. A batch without objects gives zero regression terms instead
  of NaN means over empty tensors.
* :meth:`~FixedMonoFlexHead.init_weights`: upstream's raises
  ``AttributeError`` (it runs ``AnchorFreeMono3DHead.init_weights``, which
  reads shared ``cls_convs`` that ``MonoFlexHead._init_layers`` never
  builds), so a runner cannot even initialise the model; and it would give
  ``xavier_normal(gain=0.01)`` to branch 4 (the 3D size) and 7 where
  MonoFlex initialises both uncertainty outputs, 3 and 7 (release
  ``UNCERTAINTY_INIT``), leaving the keypoint-depth uncertainties at
  random.
* :meth:`~FixedMonoFlexHead._init_edge_module`: the edge-fusion modules are
  built for 256 channels whatever the branches have (a head with other
  widths crashes), with a ReLU the release does not have
  (``EDGE_FUSION_RELU: False``). Fixed: the branch widths, no activation.
* :meth:`~FixedMonoFlexHead.forward_single` applies every conv of a
  multi-layer classification branch to the input instead of chaining them.
* :meth:`~FixedMonoFlexHead.predict_by_feat` (and ``predict``, which
  upstream inherits without the image metas its ``forward`` needs):
  upstream reshapes the 50 regression channels to 8, calls the coder's
  ``decode`` and ``decode_orientation`` with wrong arguments and
  hard-codes 100 peaks and a 0.25 threshold. Fixed: the release's decoding
  (50 peaks above 0.2 on the heatmap, soft-combined depth, score = peak x
  (1 - clamped combined uncertainty), ``UNCERTAINTY_AS_CONFIDENCE``), boxes
  lifted with the feature-map camera, 2D boxes mapped back to the original
  image.

The coder's fixes are in :mod:`ddml.compat.monoflex_coder`, the MultiBin
loss's in :mod:`ddml.compat.monoflex_losses`. mmdet3d 1.4 has no MonoFlex
detector; :class:`MonoFlex` (registered ``MonoFlex``) is MonoDLE's
single-stage detector of this package, whose ``predict`` also returns the
regressed 2D boxes.

When applied: registered at ``import ddml``; configs opt in by type
(configs/monoflex/, configs/demo/*monoflex*). mmdet3d's classes are not
modified.
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmdet.models.utils import gen_gaussian_target, multi_apply
from mmdet.models.utils.gaussian_target import (get_local_maximum,
                                                get_topk_from_heatmap)
from mmengine.config import ConfigDict
from mmengine.model import normal_init, xavier_init
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet3d.models.dense_heads import MonoFlexHead
from mmdet3d.models.layers import EdgeFusionModule
from mmdet3d.models.utils import get_edge_indices
from mmdet3d.registry import MODELS
from mmdet3d.structures import CameraInstance3DBoxes
from ..models.detectors.monodle import MonoDLE
from ..models.heads.monodle_head import centernet_gaussian_radius
from .monoflex_coder import KEYPOINT_GROUPS
from .monoflex_losses import FixedMultiBinLoss  # noqa: F401 (registers)
from .monoflex_transforms import AffineResizeKeepTruncated  # noqa: F401

__all__ = [
    'FixedMonoFlexHead', 'MonoFlex', 'MONOFLEX_GROUP_REG_DIMS',
    'ellip_gaussian_target', 'feature_camera', 'border_intersection',
    'lift_to_camera'
]

#: The regression layout the coder's channel slices assume: 2D box (4), 3D
#: centre offset (2), 10 keypoints (20), keypoint-depth uncertainties (3),
#: 3D size (3), orientation (8 bin logits, 8 residuals), depth (1), depth
#: uncertainty (1) = 50 channels.
MONOFLEX_GROUP_REG_DIMS = ((4, ), (2, ), (20, ), (3, ), (3, ), (8, 8), (1, ),
                           (1, ))
_CORNER_UNCERTAINTY, _DEPTH_UNCERTAINTY = 3, 7
_HEATMAP_CLAMP = 1e-4
# vertical edges (top, bottom) of mmdet3d's corner order
_EDGES = ((0, 3), (1, 2), (4, 7), (5, 6))


def ellip_gaussian_target(heatmap: Tensor, center: Sequence[int],
                          radius_x: int, radius_y: int) -> Tensor:
    """Draw an elliptical Gaussian peak (max with what is there).

    The release's ``draw_umich_gaussian_2D``: ``sigma = (2 r + 1) / 6`` per
    axis, so a radius of 0 gives a single peak of 1 (mmdet3d's
    ``get_ellip_gaussian_2D`` floors the sigma to 0 there: NaN).

    Args:
        heatmap (Tensor): (H, W), modified in place.
        center (Sequence[int]): ``(x, y)`` cell of the peak.
        radius_x (int): Radius across x, cells.
        radius_y (int): Radius across y, cells.

    Returns:
        Tensor: ``heatmap``.
    """
    rx, ry = max(0, int(radius_x)), max(0, int(radius_y))
    sx, sy = (2 * rx + 1) / 6., (2 * ry + 1) / 6.
    xs = torch.arange(-rx, rx + 1, dtype=heatmap.dtype,
                      device=heatmap.device).view(1, -1)
    ys = torch.arange(-ry, ry + 1, dtype=heatmap.dtype,
                      device=heatmap.device).view(-1, 1)
    kernel = torch.exp(-xs * xs / (2 * sx * sx) - ys * ys / (2 * sy * sy))
    kernel[kernel < torch.finfo(kernel.dtype).eps * kernel.max()] = 0
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape
    left, right = min(x, rx), min(width - x, rx + 1)
    top, bottom = min(y, ry), min(height - y, ry + 1)
    if right <= 0 or bottom <= 0 or left < 0 or top < 0:
        return heatmap
    region = heatmap[y - top:y + bottom, x - left:x + right]
    patch = kernel[ry - top:ry + bottom, rx - left:rx + right]
    torch.maximum(region, patch, out=region)
    return heatmap


def feature_camera(meta: dict, stride: Tuple[float, float]) -> np.ndarray:
    """The 3x4 camera of the feature map of one image.

    ``trans_mat @ cam2img`` when the metas have AffineResize's
    ``trans_mat`` (original image -> feature map; ``cam2img`` then describes
    the original image), else ``diag(1/sx, 1/sy, 1) @ cam2img`` (``cam2img``
    describes the network input).

    Args:
        meta (dict): Image metas with ``cam2img`` (3x3, 3x4 or 4x4).
        stride (tuple[float, float]): ``(stride_x, stride_y)``.

    Returns:
        np.ndarray: (3, 4) float64.
    """
    cam = np.asarray(meta['cam2img'], dtype=np.float64)
    proj = np.zeros((3, 4))
    proj[:min(3, cam.shape[0]), :min(4, cam.shape[1])] = cam[:3, :4]
    trans = meta.get('trans_mat')
    if trans is None:
        trans = np.diag([1. / stride[0], 1. / stride[1], 1.])
    trans = np.asarray(trans, dtype=np.float64)
    if trans.ndim == 3:  # AffineResize with several down ratios
        trans = trans[0]
    return trans @ proj


def lift_to_camera(cam: Tensor, uv: Tensor, depth: Tensor) -> Tensor:
    """3D points that ``cam`` projects to ``uv`` at projective depth
    ``depth`` (the ``w`` the projection divides by, mmdet3d's ``depths``).

    Args:
        cam (Tensor): (N, 3, 4) cameras.
        uv (Tensor): (N, 2) image points of the cameras' frame.
        depth (Tensor): (N, ) depths.

    Returns:
        Tensor: (N, 3) points.
    """
    homo = torch.cat([uv * depth[:, None], depth[:, None]], dim=1)
    rhs = homo - cam[:, :, 3]
    return torch.linalg.solve(cam[:, :, :3], rhs.unsqueeze(-1)).squeeze(-1)


def _project(cam: Tensor, points: Tensor) -> Tuple[Tensor, Tensor]:
    """(..., 3) points through a (3, 4) camera: (..., 2) and depth."""
    homo = points @ cam[:, :3].t() + cam[:, 3]
    depth = homo[..., 2]
    return homo[..., :2] / depth.clamp(min=1e-6)[..., None], depth


def border_intersection(point: Sequence[float], towards: Sequence[float],
                        x_max: float, y_max: float) -> Tuple[float, float]:
    """Where the segment from ``point`` (outside) to ``towards`` (inside)
    enters the rectangle ``[0, x_max] x [0, y_max]``.

    MonoFlex's representation of a truncated object: the intersection of
    the image border with the line from its projected 3D centre to its 2D
    box centre, the one nearest the projected centre (paper, Sec. 3.2;
    release ``approx_proj_center``).

    Args:
        point (Sequence[float]): ``(x, y)`` outside the rectangle.
        towards (Sequence[float]): ``(x, y)`` inside it.
        x_max (float): Right border.
        y_max (float): Bottom border.

    Returns:
        tuple[float, float]: The entry point (``point`` clipped into the
        rectangle when the segment does not enter it).
    """
    p = np.asarray(point, dtype=np.float64)
    d = np.asarray(towards, dtype=np.float64) - p
    enter, leave = 0.0, 1.0
    for axis, upper in ((0, x_max), (1, y_max)):
        if abs(d[axis]) < 1e-12:
            if not 0 <= p[axis] <= upper:
                enter, leave = 1.0, 0.0
            continue
        t0, t1 = (0 - p[axis]) / d[axis], (upper - p[axis]) / d[axis]
        enter = max(enter, min(t0, t1))
        leave = min(leave, max(t0, t1))
    out = p + enter * d if enter <= leave else p
    return (float(np.clip(out[0], 0, x_max)),
            float(np.clip(out[1], 0, y_max)))


def _corners(centres: Tensor, dims: Tensor, yaws: Tensor) -> Tensor:
    """(N, 8, 3) corners (mmdet3d's order) of boxes given by their gravity
    centres, ``(l, h, w)`` and yaws; differentiable."""
    bottom = centres + torch.stack(
        [torch.zeros_like(dims[:, 1]), dims[:, 1] / 2,
         torch.zeros_like(dims[:, 1])], dim=1)
    boxes = CameraInstance3DBoxes(
        torch.cat([bottom, dims, yaws[:, None]], dim=1))
    return boxes.corners


@MODELS.register_module()
class FixedMonoFlexHead(MonoFlexHead):
    """mmdet3d's ``MonoFlexHead`` network, trained and decoded as MonoFlex
    (see the module docstring for each upstream defect fixed).

    The branches are upstream's: a heatmap branch and eight regression
    groups (:data:`MONOFLEX_GROUP_REG_DIMS`), each ``Conv3x3 + norm + ReLU``
    then ``Conv1x1`` per output, with edge fusion on the heatmap and the
    3D-offset output. Everything geometric is computed in the frame of the
    feature map (cells), with its camera :func:`feature_camera`.

    Args:
        num_classes (int): Heatmap channels.
        in_channels (int): Channels of the neck output (64 for DLA-34 +
            DLANeck).
        use_edge_fusion (bool): Edge fusion (paper, Sec. 3.2). Defaults to
            True.
        edge_fusion_inds (Sequence[tuple]): ``(group, output)`` indices of
            the regression outputs fused at the border. Defaults to
            ``[(1, 0)]`` (the 3D offset).
        edge_heatmap_ratio (float): Radius of the 1D heatmap of a truncated
            object as a fraction of its box extent (release
            ``HEATMAP_RATIO``). Defaults to 0.5.
        edge_fusion_act_cfg (dict, optional): Activation inside the edge
            fusion module. Defaults to None (release:
            ``EDGE_FUSION_RELU: False``).
        consider_truncated (bool): Train objects whose projected centre
            leaves the image at their border intersection (release
            ``CONSIDER_OUTSIDE_OBJS: True``); False drops them as upstream.
            Defaults to True.
        keypoint_visible_modify (bool): A corner counts as visible when
            either end of its vertical edge is, a face centre when either
            centre is (release ``KEYPOINT_VISIBLE_MODIFY: True``). Defaults
            to True.
        train_invalid_keypoint_uncertainty (bool): Train the uncertainty of
            keypoint depths whose keypoints are not all visible, with the
            depth detached (release ``MODIFY_INVALID_KEYPOINT_DEPTH``).
            Defaults to True.
        min_overlap (float): Minimum IoU of the heatmap radius. Defaults to
            0.7.
        init_bias (float): Initial heatmap logit bias (release:
            ``-log(1 / 0.01 - 1)`` = -4.595). Defaults to -4.595.
        loss_cls (dict): Heatmap loss. Defaults to mmdet's
            ``GaussianFocalLoss`` (alpha 2, gamma 4), weight 1.
        loss_bbox (dict): 2D box loss on ``(x1, y1, x2, y2)``. Defaults to
            mmdet's ``GIoULoss``, weight 1 (release: GIoU).
        loss_dir (dict): Orientation loss. Defaults to
            :class:`~ddml.compat.monoflex_losses.FixedMultiBinLoss`,
            weight 1.
        loss_keypoints, loss_dims, loss_offsets_2d, loss_trunc_offsets,
            loss_direct_depth, loss_keypoints_depth, loss_combined_depth,
            loss_corners (dict): L1 losses (``mmdet.L1Loss``) whose
            ``loss_weight`` is read; the reductions are MonoFlex's (see
            :meth:`loss_by_feat`). Default weights: the release's 1, 1,
            0.5, 0.1, 1, 0.2, 0.2, 0.2.
        bbox_coder (dict): Defaults to
            :class:`~ddml.compat.monoflex_coder.FixedMonoFlexCoder`.
        test_cfg (dict, optional): ``topk`` (50), ``local_maximum_kernel``
            (3), ``score_thr`` (0.2, on the heatmap peak), ``depth``
            (``'soft'``: the uncertainty-weighted combination; or
            ``'direct'``), ``uncertainty_as_confidence`` (True), ``pred_2d``
            (True: also return the regressed 2D boxes), ``score_2d``
            (``'heatmap'``: the peak; ``'with_depth'``: the 3D score).
        **kwargs: ``AnchorFreeMono3DHead``'s arguments; the defaults are
            MonoFlex's (no shared convs, 256-channel branches, GN).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 use_edge_fusion: bool = True,
                 edge_fusion_inds: Sequence[Tuple[int, int]] = ((1, 0), ),
                 edge_heatmap_ratio: float = 0.5,
                 edge_fusion_act_cfg: Optional[dict] = None,
                 consider_truncated: bool = True,
                 keypoint_visible_modify: bool = True,
                 train_invalid_keypoint_uncertainty: bool = True,
                 min_overlap: float = 0.7,
                 init_bias: float = -4.595,
                 loss_cls: dict = dict(
                     type='mmdet.GaussianFocalLoss', loss_weight=1.0),
                 loss_bbox: dict = dict(type='mmdet.GIoULoss',
                                        loss_weight=1.0),
                 loss_dir: dict = dict(
                     type='FixedMultiBinLoss', loss_weight=1.0),
                 loss_keypoints: dict = dict(
                     type='mmdet.L1Loss', loss_weight=1.0),
                 loss_dims: dict = dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_offsets_2d: dict = dict(
                     type='mmdet.L1Loss', loss_weight=0.5),
                 loss_trunc_offsets: dict = dict(
                     type='mmdet.L1Loss', loss_weight=0.1),
                 loss_direct_depth: dict = dict(
                     type='mmdet.L1Loss', loss_weight=1.0),
                 loss_keypoints_depth: dict = dict(
                     type='mmdet.L1Loss', loss_weight=0.2),
                 loss_combined_depth: dict = dict(
                     type='mmdet.L1Loss', loss_weight=0.2),
                 loss_corners: dict = dict(
                     type='mmdet.L1Loss', loss_weight=0.2),
                 bbox_coder: dict = dict(type='FixedMonoFlexCoder'),
                 norm_cfg: dict = dict(
                     type='GN', num_groups=32, requires_grad=True),
                 feat_channels: Optional[int] = None,
                 stacked_convs: int = 0,
                 cls_branch: Sequence[int] = (256, ),
                 reg_branch: Sequence[Sequence[int]] = ((256, ), ) * 8,
                 group_reg_dims: Sequence[Sequence[int]] = (
                     MONOFLEX_GROUP_REG_DIMS),
                 test_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        group_reg_dims = tuple(tuple(g) for g in group_reg_dims)
        if group_reg_dims != MONOFLEX_GROUP_REG_DIMS:
            raise ValueError(
                'FixedMonoFlexHead: the coder reads the 50 regression '
                f'channels in the layout {MONOFLEX_GROUP_REG_DIMS}, got '
                f'group_reg_dims={group_reg_dims}')
        if stacked_convs != 0:
            raise ValueError('FixedMonoFlexHead has no shared convs '
                             f'(stacked_convs=0), got {stacked_convs}')
        self.edge_fusion_act_cfg = edge_fusion_act_cfg
        for key in ('use_direction_classifier', 'diff_rad_by_sin',
                    'pred_attrs', 'pred_velo'):
            kwargs.setdefault(key, False)
        kwargs.setdefault('dir_offset', 0)
        kwargs.setdefault('strides', None)
        kwargs.setdefault('num_attrs', 0)
        kwargs.setdefault('bbox_code_size', 7)
        kwargs.setdefault('dir_branch', ())
        kwargs.setdefault('attr_branch', ())
        kwargs.setdefault('conv_bias', True)
        kwargs.setdefault('dcn_on_last_conv', False)
        super().__init__(
            num_classes=num_classes,
            in_channels=in_channels,
            use_edge_fusion=use_edge_fusion,
            edge_fusion_inds=[tuple(i) for i in edge_fusion_inds],
            edge_heatmap_ratio=edge_heatmap_ratio,
            filter_outside_objs=not consider_truncated,
            loss_cls=loss_cls,
            loss_bbox=loss_bbox,
            loss_dir=loss_dir,
            loss_keypoints=loss_keypoints,
            loss_dims=loss_dims,
            loss_offsets_2d=loss_offsets_2d,
            loss_direct_depth=loss_direct_depth,
            loss_keypoints_depth=loss_keypoints_depth,
            loss_combined_depth=loss_combined_depth,
            bbox_coder=bbox_coder,
            norm_cfg=norm_cfg,
            init_bias=init_bias,
            feat_channels=in_channels if feat_channels is None else
            feat_channels,
            stacked_convs=stacked_convs,
            cls_branch=tuple(cls_branch),
            reg_branch=tuple(tuple(r) for r in reg_branch),
            group_reg_dims=group_reg_dims,
            test_cfg=test_cfg,
            **kwargs)
        if self.feat_channels != in_channels:
            raise ValueError(
                'FixedMonoFlexHead: without shared convs the branches read '
                f'the neck output directly: feat_channels '
                f'({self.feat_channels}) must equal in_channels '
                f'({in_channels})')
        if getattr(self.bbox_coder, 'num_classes', num_classes) != \
                num_classes:
            raise ValueError(
                f'FixedMonoFlexHead: bbox_coder.base_dims has '
                f'{self.bbox_coder.num_classes} rows for {num_classes} '
                'classes; give one (l, h, w, std_l, std_h, std_w) per class '
                "in the dataset's class order")
        if type(self.loss_dir).__name__ == 'MultiBinLoss':
            warnings.warn(
                "FixedMonoFlexHead: loss_dir=MultiBinLoss trains bin 0 only "
                'and raises ZeroDivisionError on batches without an object in '
                "it (open-mmlab/mmdetection3d #1652); use 'FixedMultiBinLoss'")
        self.loss_trunc_offsets = MODELS.build(loss_trunc_offsets)
        self.loss_corners = MODELS.build(loss_corners)
        for name in ('loss_keypoints', 'loss_dims', 'loss_offsets_2d',
                     'loss_trunc_offsets', 'loss_direct_depth',
                     'loss_keypoints_depth', 'loss_combined_depth',
                     'loss_corners'):
            if type(getattr(self, name)).__name__ != 'L1Loss':
                raise ValueError(
                    f'FixedMonoFlexHead.{name} must be an L1 loss (only its '
                    'loss_weight is read; the reduction is MonoFlex\'s), got '
                    f'{type(getattr(self, name)).__name__}')
        self.consider_truncated = bool(consider_truncated)
        self.keypoint_visible_modify = bool(keypoint_visible_modify)
        self.train_invalid_keypoint_uncertainty = bool(
            train_invalid_keypoint_uncertainty)
        self.min_overlap = float(min_overlap)
        defaults = dict(topk=50, local_maximum_kernel=3, score_thr=0.2,
                        depth='soft', uncertainty_as_confidence=True,
                        pred_2d=True, score_2d='heatmap')
        defaults.update(test_cfg or {})
        if defaults['depth'] not in ('soft', 'direct'):
            raise ValueError("FixedMonoFlexHead test_cfg.depth must be "
                             f"'soft' or 'direct', got {defaults['depth']!r}")
        if defaults['score_2d'] not in ('heatmap', 'with_depth'):
            raise ValueError("FixedMonoFlexHead test_cfg.score_2d must be "
                             "'heatmap' or 'with_depth', got "
                             f"{defaults['score_2d']!r}")
        self.test_cfg = ConfigDict(defaults)

    # ------------------------------------------------------------------
    # network
    # ------------------------------------------------------------------
    def _init_edge_module(self) -> None:
        """Edge fusion for the heatmap and ``edge_fusion_inds``, as wide as
        the branches they read, without activation (release)."""
        act = getattr(self, 'edge_fusion_act_cfg', None)
        self.edge_fuse_cls = EdgeFusionModule(
            self.num_classes, self.cls_branch[-1], act_cfg=act)
        for reg_inds, out_inds in self.edge_fusion_inds:
            out_channels = self.group_reg_dims[reg_inds][out_inds]
            width = self.reg_branch[reg_inds][-1] \
                if len(self.reg_branch[reg_inds]) else self.feat_channels
            self.add_module(f'edge_fuse_reg_{reg_inds}_{out_inds}',
                            EdgeFusionModule(out_channels, width,
                                             act_cfg=act))

    def init_weights(self) -> None:
        """Upstream's intended initialisation (its ``init_weights`` raises
        ``AttributeError``: it calls ``AnchorFreeMono3DHead``'s, which reads
        the shared ``cls_convs`` this head never builds), with
        ``xavier_normal(gain=0.01)`` on the two uncertainty outputs (groups
        3 and 7, not 4 and 7) and zero regression biases, as the release:
        N(0, 0.01) for the branch convs and the heatmap output (bias
        ``init_bias``), PyTorch's default for the other outputs."""
        branches = [self.conv_cls_prev] + [
            prev for prev in self.conv_reg_prevs if prev is not None
        ]
        for branch in branches:
            for m in branch:
                if isinstance(getattr(m, 'conv', None), nn.Conv2d):
                    normal_init(m.conv, std=0.01)
        normal_init(self.conv_cls, std=0.01, bias=self.init_bias)
        for group in (_CORNER_UNCERTAINTY, _DEPTH_UNCERTAINTY):
            xavier_init(self.conv_regs[group][0], gain=0.01,
                        distribution='normal')
        for m in self.conv_regs.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def forward(self,
                feats: Sequence[Tensor],
                batch_img_metas: Optional[List[dict]] = None):
        """Heatmap and regression maps of each level.

        Args:
            feats (Sequence[Tensor]): Neck outputs (MonoFlex: one map).
            batch_img_metas (list[dict], optional): Image metas (``img_shape``
                and ``pad_shape`` place the image border for edge fusion);
                without them the border is the feature map's.

        Returns:
            tuple[list[Tensor], list[Tensor]]: Heatmap probabilities
            (clamped sigmoid) and the 50 regression channels per level.
        """
        feats = [feats] if isinstance(feats, Tensor) else list(feats)
        if batch_img_metas is None:
            height, width = feats[0].shape[-2:]
            batch_img_metas = [
                dict(img_shape=(height, width), pad_shape=(height, width))
            ] * feats[0].shape[0]
        return multi_apply(self.forward_single, feats,
                           [batch_img_metas] * len(feats))

    def forward_single(self, x: Tensor,
                       batch_img_metas: List[dict]) -> Tuple[Tensor, Tensor]:
        """One level: every conv of a branch chained (upstream applies each
        classification conv to ``x``)."""
        batch_size, _, feat_h, feat_w = x.shape
        shapes = []
        for meta in batch_img_metas:
            img = tuple(meta.get('img_shape', (feat_h, feat_w))[:2])
            pad = tuple(meta.get('pad_shape', img)[:2])
            shapes.append(dict(img_shape=img, pad_shape=pad))
        ratio = shapes[0]['pad_shape'][0] / feat_h
        cls_feat = x
        for layer in self.conv_cls_prev:
            cls_feat = layer(cls_feat)
        out_cls = self.conv_cls(cls_feat)
        if self.use_edge_fusion:
            edges = get_edge_indices(shapes, ratio, device=x.device)
            lens = [len(e) for e in edges]
            edge_indices = x.new_zeros((batch_size, max(lens), 2),
                                       dtype=torch.long)
            for i, e in enumerate(edges):
                edge_indices[i, :lens[i]] = e
            out_cls = self.edge_fuse_cls(cls_feat, out_cls, edge_indices,
                                         lens, feat_h, feat_w)
        outs = []
        for i in range(len(self.group_reg_dims)):
            reg_feat = x
            if self.conv_reg_prevs[i] is not None:
                for layer in self.conv_reg_prevs[i]:
                    reg_feat = layer(reg_feat)
            for j, conv in enumerate(self.conv_regs[i]):
                out = conv(reg_feat)
                if self.use_edge_fusion and (i, j) in self.edge_fusion_inds:
                    out = getattr(self, f'edge_fuse_reg_{i}_{j}')(
                        reg_feat, out, edge_indices, lens, feat_h, feat_w)
                outs.append(out)
        cls_score = out_cls.sigmoid().clamp(_HEATMAP_CLAMP,
                                            1 - _HEATMAP_CLAMP)
        return cls_score, torch.cat(outs, dim=1)

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def loss(self, x: Sequence[Tensor], batch_data_samples: list,
             **kwargs) -> Dict[str, Tensor]:
        """Losses of a batch (upstream calls ``self.loss`` recursively)."""
        metas = [s.metainfo for s in batch_data_samples]
        gt3d = [s.gt_instances_3d for s in batch_data_samples]
        gt2d = [s.gt_instances for s in batch_data_samples]
        cls_scores, bbox_preds = self(x, metas)
        return self.loss_by_feat(cls_scores, bbox_preds, gt3d, gt2d, metas)

    @staticmethod
    def _stride(meta: dict, feat_hw: Sequence[int]) -> Tuple[float, float]:
        shape = meta.get('batch_input_shape', meta.get('pad_shape',
                                                       meta.get('img_shape')))
        return float(shape[1]) / feat_hw[1], float(shape[0]) / feat_hw[0]

    def get_targets(self, batch_gt_instances_3d: List[InstanceData],
                    batch_gt_instances: List[InstanceData],
                    feat_shape: Sequence[int],
                    batch_img_metas: List[dict]) -> Tuple[Tensor, Dict]:
        """The heatmap and the per-object targets of a batch, in cells.

        Per kept object (label of a class, depth > 0, 2D box of positive
        size, projected centre in the image or ``consider_truncated``):
        the *cell* is the rounded projected centre, or for a truncated
        object the rounded border intersection
        (:func:`border_intersection`), clipped into the image's cells;
        ``offsets`` = projected centre - cell; ``bbox2d`` the 2D box;
        ``keypoints`` the 10 projected keypoints - cell with their
        visibility; ``depth`` mmdet3d's ``depths`` (the projective depth);
        ``orientation`` the coder's MultiBin encoding of the local yaw
        (``local_yaws``);
        ``locations``/``corners`` the box re-lifted from (projected
        centre, depth) with the feature camera (the release's corner-loss
        target). Keypoints are anchored on the pipeline's ``centers_2d``.

        Args:
            batch_gt_instances_3d (list[InstanceData]): ``bboxes_3d``,
                ``labels_3d``, ``centers_2d`` (input pixels), ``depths``.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (input
                pixels), index-aligned.
            feat_shape (Sequence[int]): ``(B, C, H, W)``.
            batch_img_metas (list[dict]): Metas (``cam2img``,
                ``trans_mat``, ``img_shape``, ``pad_shape``).

        Returns:
            tuple[Tensor, dict]: The heatmap (B, classes, H, W) and a dict of
            per-object tensors (see :meth:`_empty_targets` for the keys).
        """
        bs, _, feat_h, feat_w = feat_shape
        device = batch_gt_instances_3d[0].labels_3d.device
        heatmap = torch.zeros((bs, self.num_classes, feat_h, feat_w),
                              device=device)
        per_image = []
        for b in range(bs):
            targets = self._image_targets(batch_gt_instances_3d[b],
                                          batch_gt_instances[b],
                                          batch_img_metas[b], (feat_h, feat_w),
                                          heatmap[b], device)
            if targets is not None:
                targets['batch_idx'] = torch.full_like(targets['labels'], b)
                per_image.append(targets)
        if not per_image:
            return heatmap, self._empty_targets(device)
        return heatmap, {
            k: torch.cat([t[k] for t in per_image])
            for k in per_image[0]
        }

    def _image_targets(self, gt3d: InstanceData, gt2d: InstanceData,
                       meta: dict, feat_hw: Tuple[int, int], heatmap: Tensor,
                       device) -> Optional[Dict[str, Tensor]]:
        labels = torch.as_tensor(gt3d.labels_3d, device=device).long()
        num = labels.shape[0]
        if num == 0:
            return None
        boxes_2d = torch.as_tensor(gt2d.bboxes, device=device).float()
        if boxes_2d.shape[0] != num:
            raise ValueError(
                f'FixedMonoFlexHead: {num} 3D objects but {len(boxes_2d)} '
                '2D boxes; load them together (LoadAnnotations3D with '
                "with_bbox=True, 'gt_bboxes' in Pack3DDetInputs.keys)")
        feat_h, feat_w = feat_hw
        sx, sy = self._stride(meta, feat_hw)
        img_h, img_w = meta.get('img_shape', meta.get('pad_shape'))[:2]
        x_max, y_max = (img_w - 1) / sx, (img_h - 1) / sy
        cell_x_max = min(int(math.floor(x_max)), feat_w - 1)
        cell_y_max = min(int(math.floor(y_max)), feat_h - 1)
        cam_np = feature_camera(meta, (sx, sy))
        cam = torch.as_tensor(cam_np, dtype=torch.float32, device=device)
        boxes_3d = gt3d.bboxes_3d.to(device)
        scale = boxes_2d.new_tensor([sx, sy])
        centres = torch.as_tensor(gt3d.centers_2d, device=device).float() / \
            scale
        box_f = boxes_2d / scale.repeat(2)
        if 'depths' in gt3d:
            depth = torch.as_tensor(gt3d.depths, device=device).float()
        else:
            depth = boxes_3d.gravity_center[:, 2] + float(cam_np[2, 3])
        inside = (centres[:, 0] >= 0) & (centres[:, 0] <= x_max) & \
            (centres[:, 1] >= 0) & (centres[:, 1] <= y_max)
        keep = (labels >= 0) & (labels < self.num_classes) & (depth > 0) & \
            (box_f[:, 2] > box_f[:, 0]) & (box_f[:, 3] > box_f[:, 1]) & \
            torch.isfinite(centres).all(1) & torch.isfinite(box_f).all(1)
        if not self.consider_truncated:
            keep &= inside
        if not bool(keep.any()):
            return None
        labels, centres, box_f, depth, inside = (labels[keep], centres[keep],
                                                 box_f[keep], depth[keep],
                                                 inside[keep])
        boxes_3d = boxes_3d[keep]
        n = labels.shape[0]

        # representative cell: projected centre or border intersection
        points = centres.clone()
        for j in torch.nonzero(~inside).flatten().tolist():
            box_centre = ((box_f[j, :2] + box_f[j, 2:]) / 2).tolist()
            points[j] = points.new_tensor(
                border_intersection(centres[j].tolist(), box_centre, x_max,
                                    y_max))
        cells = points.round().long()
        cells[:, 0] = cells[:, 0].clamp(0, cell_x_max)
        cells[:, 1] = cells[:, 1].clamp(0, cell_y_max)
        cells_f = cells.float()
        trunc = ~inside

        # heatmap: a CenterNet Gaussian, or a 1D one along the border
        for j in range(n):
            cx, cy = cells[j].tolist()
            x1, y1, x2, y2 = box_f[j].tolist()
            cls = int(labels[j])
            if trunc[j]:
                rx = min(cx - x1, x2 - cx) * self.edge_heatmap_ratio
                ry = min(cy - y1, y2 - cy) * self.edge_heatmap_ratio
                ellip_gaussian_target(heatmap[cls], (cx, cy),
                                      max(0, int(rx)), max(0, int(ry)))
            else:
                radius = centernet_gaussian_radius(y2 - y1, x2 - x1,
                                                   self.min_overlap)
                gen_gaussian_target(heatmap[cls], [cx, cy],
                                    max(0, int(radius)))

        # keypoints: 8 corners, bottom and top face centres
        corners = boxes_3d.corners
        bottom = boxes_3d.bottom_center
        top = bottom.clone()
        top[:, 1] -= boxes_3d.dims[:, 1]
        kp3d = torch.cat([corners, bottom[:, None], top[:, None]], dim=1)
        kp2d, kp_z = _project(cam, kp3d)
        proj_centre, _ = _project(cam, boxes_3d.gravity_center)
        # anchor on the pipeline's centre (mmdet3d's flip moves c_u only)
        kp2d = kp2d + (centres - proj_centre)[:, None]
        visible = (kp2d[..., 0] >= 0) & (kp2d[..., 0] <= x_max) & \
            (kp2d[..., 1] >= 0) & (kp2d[..., 1] <= y_max) & (kp_z > 0)
        if self.keypoint_visible_modify:
            modified = visible.clone()
            for top_i, bottom_i in _EDGES:
                either = visible[:, top_i] | visible[:, bottom_i]
                modified[:, top_i] = either
                modified[:, bottom_i] = either
            either = visible[:, 8] | visible[:, 9]
            modified[:, 8] = either
            modified[:, 9] = either
            visible = modified
        depth_valid = torch.stack([
            visible[:, sorted({i for pair in pairs for i in pair})].all(1)
            for pairs in KEYPOINT_GROUPS
        ], dim=1)

        # 2D box target only where the cell lies in the box (release)
        bbox2d_valid = (cells_f[:, 0] >= box_f[:, 0]) & \
            (cells_f[:, 0] <= box_f[:, 2]) & \
            (cells_f[:, 1] >= box_f[:, 1]) & (cells_f[:, 1] <= box_f[:, 3])

        cams = cam.expand(n, 3, 4)
        locations = lift_to_camera(cams, centres, depth)
        dims = boxes_3d.dims.float()
        yaws = boxes_3d.yaw.float()
        return dict(
            labels=labels,
            cells=cells,
            offsets=centres - cells_f,
            trunc=trunc,
            bbox2d=box_f,
            bbox2d_valid=bbox2d_valid,
            keypoints=kp2d - cells_f[:, None],
            keypoints_visible=visible,
            keypoints_depth_valid=depth_valid,
            depth=depth,
            dims=dims,
            orientation=self.bbox_coder.encode(boxes_3d),
            local_yaws=boxes_3d.local_yaw.float(),
            locations=locations,
            corners=_corners(locations, dims, yaws),
            cams=cams.contiguous())

    def _empty_targets(self, device) -> Dict[str, Tensor]:
        nb = self.bbox_coder.num_dir_bins
        shapes = dict(
            labels=(0, ), cells=(0, 2), offsets=(0, 2), trunc=(0, ),
            bbox2d=(0, 4), bbox2d_valid=(0, ), keypoints=(0, 10, 2),
            keypoints_visible=(0, 10), keypoints_depth_valid=(0, 3),
            depth=(0, ), dims=(0, 3), orientation=(0, 2 * nb),
            local_yaws=(0, ), locations=(0, 3), corners=(0, 8, 3),
            cams=(0, 3, 4), batch_idx=(0, ))
        out = {k: torch.zeros(s, device=device) for k, s in shapes.items()}
        for k in ('labels', 'cells', 'batch_idx'):
            out[k] = out[k].long()
        for k in ('trunc', 'bbox2d_valid', 'keypoints_visible',
                  'keypoints_depth_valid'):
            out[k] = out[k].bool()
        return out

    def loss_by_feat(
            self,
            cls_scores: List[Tensor],
            bbox_preds: List[Tensor],
            batch_gt_instances_3d: List[InstanceData],
            batch_gt_instances: List[InstanceData],
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: Optional[list] = None
    ) -> Dict[str, Tensor]:
        """MonoFlex's eleven loss terms (release ``detector_loss.py``).

        With ``w_*`` the ``loss_weight`` of each loss config, over the N
        kept objects (``u``: clamped log-uncertainties):

        * ``loss_cls``: focal loss on the heatmap / number of peaks;
        * ``loss_bbox``: GIoU of the 2D boxes whose cell lies in the box;
        * ``loss_offsets_2d``: ``w`` x mean over untruncated objects of
          ``|dx| + |dy|``; ``loss_trunc_offsets``: ``w`` x mean over
          truncated objects of ``log(1 + |dx| + |dy|)``;
        * ``loss_dims``: ``w`` x mean of ``|dl| + |dh| + |dw|``;
        * ``loss_dir``: the MultiBin loss of the local yaw;
        * ``loss_keypoints``: ``w`` x sum over visible keypoints of
          ``|dx| + |dy|`` / their number;
        * ``loss_direct_depth``: ``w`` x mean of ``|dz| exp(-u) + u``;
        * ``loss_keypoints_depth``: ``w`` x (mean over valid groups of
          ``|dz| exp(-u) + u`` + mean over invalid groups of
          ``|dz| exp(-u)`` with the depth detached);
        * ``loss_combined_depth``: ``w`` x mean ``|dz|`` of the
          uncertainty-weighted depth;
        * ``loss_corners``: ``w`` x mean over the 8N corners of the L1 over
          xyz between the predicted box (combined depth, predicted size and
          yaw) and the target.

        A term without objects is an exact 0 connected to the graph.
        """
        assert len(cls_scores) == len(bbox_preds) == 1
        heat, reg = cls_scores[0], bbox_preds[0]
        target_heat, t = self.get_targets(batch_gt_instances_3d,
                                          batch_gt_instances, heat.shape,
                                          batch_img_metas)
        losses = dict(
            loss_cls=self.loss_cls(
                heat, target_heat,
                avg_factor=max(1, int(target_heat.eq(1).sum()))))
        zero = reg.sum() * 0.
        names = ('loss_bbox', 'loss_offsets_2d', 'loss_trunc_offsets',
                 'loss_dims', 'loss_dir', 'loss_keypoints',
                 'loss_direct_depth', 'loss_keypoints_depth',
                 'loss_combined_depth', 'loss_corners')
        if t['labels'].numel() == 0:
            losses.update({name: zero for name in names})
            return losses

        b, cells = t['batch_idx'], t['cells']
        raw = reg[b, :, cells[:, 1], cells[:, 0]]
        p = self.bbox_coder.decode(raw, cells.float(), t['labels'], 1.0,
                                   t['cams'])

        def mean_or_zero(values: Tensor) -> Tensor:
            return values.mean() if values.numel() else zero

        valid = t['bbox2d_valid']
        losses['loss_bbox'] = self.loss_bbox(
            p['bboxes2d'][valid], t['bbox2d'][valid]) if bool(
                valid.any()) else zero

        offset_l1 = (p['offsets2d'] - t['offsets']).abs().sum(1)
        trunc = t['trunc']
        losses['loss_offsets_2d'] = self.loss_offsets_2d.loss_weight * \
            mean_or_zero(offset_l1[~trunc])
        losses['loss_trunc_offsets'] = self.loss_trunc_offsets.loss_weight \
            * mean_or_zero(torch.log1p(offset_l1[trunc]))

        losses['loss_dims'] = self.loss_dims.loss_weight * \
            (p['dimensions'] - t['dims']).abs().sum(1).mean()
        losses['loss_dir'] = self.loss_dir(p['orientations'],
                                           t['orientation'],
                                           self.bbox_coder.num_dir_bins)

        vis = t['keypoints_visible'].float()
        kp_l1 = (p['keypoints2d'] - t['keypoints']).abs().sum(2) * vis
        losses['loss_keypoints'] = self.loss_keypoints.loss_weight * \
            kp_l1.sum() / vis.sum().clamp(min=1)

        target_depth = t['depth']
        u = p['direct_depth_uncertainty']
        losses['loss_direct_depth'] = self.loss_direct_depth.loss_weight * (
            (p['direct_depth'] - target_depth).abs() * torch.exp(-u) +
            u).mean()

        kp_valid = t['keypoints_depth_valid']
        kp_u = p['keypoints_depth_uncertainty']
        kp_target = target_depth[:, None].expand_as(p['keypoints_depth'])
        valid_l1 = (p['keypoints_depth'] - kp_target).abs()[kp_valid]
        valid_u = kp_u[kp_valid]
        kp_depth = (valid_l1 * torch.exp(-valid_u) + valid_u).sum() / \
            max(1, int(kp_valid.sum()))
        if self.train_invalid_keypoint_uncertainty:
            invalid = ~kp_valid
            invalid_l1 = (p['keypoints_depth'].detach() -
                          kp_target).abs()[invalid]
            kp_depth = kp_depth + (invalid_l1 * torch.exp(-kp_u[invalid])
                                   ).sum() / max(1, int(invalid.sum()))
        losses['loss_keypoints_depth'] = \
            self.loss_keypoints_depth.loss_weight * kp_depth

        combined = p['combined_depth']
        losses['loss_combined_depth'] = \
            self.loss_combined_depth.loss_weight * \
            (combined - target_depth).abs().mean()

        locations = lift_to_camera(t['cams'], cells.float() + p['offsets2d'],
                                   combined)
        yaws, _ = self.bbox_coder.decode_orientation(p['orientations'],
                                                     locations)
        corners = _corners(locations, p['dimensions'], yaws)
        losses['loss_corners'] = self.loss_corners.loss_weight * \
            (corners - t['corners']).abs().sum(2).mean()
        return losses

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def predict(self,
                x: Sequence[Tensor],
                batch_data_samples: list,
                rescale: bool = False) -> Tuple[list, list]:
        """3D and 2D results of a batch (upstream's inherited ``predict``
        calls ``forward`` without the metas it needs)."""
        metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds = self(x, metas)
        return self.predict_by_feat(
            cls_scores, bbox_preds, batch_img_metas=metas, rescale=rescale)

    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        batch_img_metas: List[dict],
                        cfg: Optional[dict] = None,
                        rescale: Optional[bool] = None
                        ) -> Tuple[List[InstanceData], List[InstanceData]]:
        """Decode the top-K heatmap peaks of every image (release
        ``detector_infer.py``).

        Args:
            cls_scores (list[Tensor]): Heatmap probabilities.
            bbox_preds (list[Tensor]): Regression maps.
            batch_img_metas (list[dict]): Metas (``cam2img``, ``trans_mat``,
                ``box_type_3d``, ``ori_shape``).
            cfg (dict, optional): Overrides of ``test_cfg``.
            rescale (bool, optional): Unused; boxes are in the original
                image.

        Returns:
            tuple[list[InstanceData], list[InstanceData]]: Per image the 3D
            results (``bboxes_3d`` with gravity-centre origin,
            ``scores_3d``, ``labels_3d``) and the 2D results (``bboxes`` in
            the original image, ``scores``, ``labels``; empty when
            ``pred_2d`` is False).
        """
        cfg_all = ConfigDict(dict(self.test_cfg))
        cfg_all.update(cfg or {})
        cfg = cfg_all
        heat, reg = cls_scores[0], bbox_preds[0]
        feat_hw = heat.shape[-2:]
        peaks_map = get_local_maximum(heat, kernel=cfg.local_maximum_kernel)
        topk = min(int(cfg.topk), peaks_map[0].numel())
        scores, inds, classes, ys, xs = get_topk_from_heatmap(
            peaks_map, k=topk)
        results_3d, results_2d = [], []
        for i, meta in enumerate(batch_img_metas):
            keep = scores[i] >= cfg.score_thr
            idx = inds[i][keep]
            raw = reg[i].reshape(reg.shape[1], -1)[:, idx].t()
            cells = torch.stack([xs[i][keep], ys[i][keep].float()], dim=1)
            labels = classes[i][keep].long()
            stride = self._stride(meta, feat_hw)
            cam = heat.new_tensor(feature_camera(meta, stride))
            cams = cam.expand(labels.shape[0], 3, 4).contiguous()
            p = self.bbox_coder.decode(raw, cells, labels, 1.0, cams)
            uncert = torch.cat([p['direct_depth_uncertainty'][:, None],
                                p['keypoints_depth_uncertainty']],
                               dim=1).exp()
            if cfg.depth == 'soft':
                depth = p['combined_depth']
                weights = 1 / uncert
                weights = weights / weights.sum(dim=1, keepdim=True)
                error = (weights * uncert).sum(dim=1)
            else:
                depth = p['direct_depth']
                error = uncert[:, 0]
            locations = lift_to_camera(cams, cells + p['offsets2d'], depth)
            yaws, _ = self.bbox_coder.decode_orientation(
                p['orientations'], locations)
            peak = scores[i][keep]
            score = peak * (1 - error.clamp(0.01, 1)) \
                if cfg.uncertainty_as_confidence else peak.clone()
            box_type = meta.get('box_type_3d', CameraInstance3DBoxes)
            res_3d = InstanceData()
            res_3d.bboxes_3d = box_type(
                torch.cat([locations, p['dimensions'], yaws[:, None]], dim=1),
                box_dim=self.bbox_code_size,
                origin=(0.5, 0.5, 0.5))
            res_3d.scores_3d = score
            res_3d.labels_3d = labels
            results_3d.append(res_3d)
            res_2d = InstanceData()
            if cfg.pred_2d:
                res_2d.bboxes = self._boxes_to_image(p['bboxes2d'], meta,
                                                     stride)
                res_2d.scores = peak.clone() \
                    if cfg.score_2d == 'heatmap' else score.clone()
                res_2d.labels = labels.clone()
            results_2d.append(res_2d)
        return results_3d, results_2d

    @staticmethod
    def _boxes_to_image(boxes: Tensor, meta: dict,
                        stride: Tuple[float, float]) -> Tensor:
        """(x1, y1, x2, y2) in cells -> the original image, clipped."""
        if meta.get('trans_mat') is not None:
            trans = np.asarray(meta['trans_mat'], dtype=np.float64)
            if trans.ndim == 3:
                trans = trans[0]
            inv = boxes.new_tensor(np.linalg.inv(trans))
            pts = boxes.reshape(-1, 2)
            pts = pts @ inv[:2, :2].t() + inv[:2, 2]
            out = pts.reshape(-1, 4)
        else:
            out = boxes * boxes.new_tensor([stride[0], stride[1]] * 2)
            if meta.get('scale_factor') is not None:
                out = out / out.new_tensor(
                    np.asarray(meta['scale_factor'])[:2]).repeat(2)
        shape = meta.get('ori_shape', meta.get('img_shape'))
        if shape is not None:
            out[:, 0::2] = out[:, 0::2].clamp(0, shape[1] - 1)
            out[:, 1::2] = out[:, 1::2].clamp(0, shape[0] - 1)
        return out


@MODELS.register_module()
class MonoFlex(MonoDLE):
    """MonoFlex (Zhang, Lu, Zhou, CVPR 2021, arXiv:2104.02323) as an mmdet3d
    single-stage monocular detector: a backbone and neck (DLA-34 and
    mmdet3d's ``DLANeck`` in configs/monoflex) and
    :class:`FixedMonoFlexHead`. mmdet3d 1.4 has no MonoFlex detector (its
    metafile links one of v1.0.0.dev0). Training is mmdet's single-stage
    ``loss``, so :class:`~ddml.models.DepthDiscriminativeDetector` wraps it
    unchanged; ``predict`` is :class:`~ddml.models.MonoDLE`'s: it also
    returns the regressed 2D boxes as ``pred_instances`` (KITTI 2D AP of
    the regressed boxes beside the 3D figures).
    """
