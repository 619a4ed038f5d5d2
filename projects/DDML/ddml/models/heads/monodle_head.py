"""MonoDLE's dense head (Ma et al., CVPR 2021).

MonoDLE ("Delving into Localization Errors for Monocular 3D Object
Detection", arXiv:2103.16237) is CenterNet with seven branches on one
stride-``s`` feature map, each ``Conv3x3(C -> F) + ReLU + Conv1x1(F -> k)``:

=============  ===============================================  ==========
branch         output                                           channels
=============  ===============================================  ==========
heatmap        class heatmap of projected 3D centres            classes
offset_2d      2D box centre - cell, in cells                   2
size_2d        2D box width and height, in cells                2
depth          raw depth ``o`` and log std ``s`` of its error   2
offset_3d      projected 3D centre - cell, in cells             2
size_3d        ``(l, h, w)`` - class mean, metres               3
heading        12 bin logits + 12 in-bin residuals              24
=============  ===============================================  ==========

(release github.com/xinzhuma/monodle, ``lib/models/centernet3d.py``; the
targets and their units are those of :class:`MonoDLECoder`).

Training follows the release (``lib/losses/centernet_loss.py``,
``lib/datasets/kitti/kitti_dataset.py``):

* the heatmap target draws a Gaussian of CenterNet's radius (minimum IoU
  0.7, from the 2D box size in cells) at the cell of every kept object's
  projected 3D centre; loss: CornerNet's focal loss
  ``-1/N sum [(1-p)^2 log p]_{y=1} + [(1-y)^4 p^2 log(1-p)]_{y<1}`` on
  ``p = clamp(sigmoid, 1e-4, 1 - 1e-4)`` (mmdet's ``GaussianFocalLoss``
  with ``avg_factor`` = number of peaks);
* 2D offset and size, 3D offset: L1; depth: Laplacian aleatoric
  uncertainty loss on ``d = 1 / (sigmoid(o) + 1e-6) - 1`` with log std
  ``s``; 3D size: the dimension-aware L1 loss (the paper's IoU-oriented
  size loss) on ``mean + residual``; heading: MultiBin (cross-entropy over
  bins + L1 on the ground-truth bin's residual);
* distant objects are left out (the paper's second strategy): objects
  with depth outside ``[min_depth, max_depth]`` (release: 2 m and 65 m) are
  neither drawn on the heatmap nor regressed, i.e. they are background;
  with ``skip_unknown_difficulty`` so are the objects of no KITTI
  difficulty (the release's 'UnKnown');
* the 2D targets (2D offset and size, the heatmap radius) come from the
  clipped projection of the 3D box (mmdet3d's ``gt_bboxes``) or, with
  ``bbox2d_source='annotated'``, from the annotated 2D box (the release's
  ``bbox2d_type: 'anno'``);
* the 3D terms (depth, 3D offset, 3D size) skip images that were randomly
  shifted or scaled (``affine_aug`` of mmdet3d's ``RandomShiftScale`` /
  ``AffineResize``), whose depths no longer match the apparent size; the
  2D terms and the heading use every image (release: ``mask_3d``);
* all seven terms have weight 1 and are summed; optionally they are
  weighted by GUPNet's hierarchical task learning (``htl``).

At inference the heatmap goes through a 3x3 max-pool NMS, the top-K
peaks above ``score_thr`` are decoded, and the score of a box is its
heatmap peak times the depth confidence ``exp(-s)`` (release:
``lib/helpers/decode_helper.py``); the regressed 2D boxes get the same
score or, with ``test_cfg.score_2d='heatmap'``, the peak alone.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmdet.models.utils import gen_gaussian_target
from mmdet.models.utils.gaussian_target import (get_local_maximum,
                                                get_topk_from_heatmap)
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet3d.models.dense_heads.base_mono3d_dense_head import \
    BaseMono3DDenseHead
from mmdet3d.registry import MODELS, TASK_UTILS
from mmdet3d.structures import CameraInstance3DBoxes
from mmdet3d.utils import (ConfigType, InstanceList, OptConfigType,
                           OptInstanceList, OptMultiConfig)
from ..defaults import MAX_DEPTH, MIN_DEPTH
from ..task_modules import MonoDLECoder

__all__ = [
    'MonoDLEHead', 'centernet_gaussian_radius', 'KITTI_MEAN_SIZES',
    'BBOX2D_SOURCES'
]

#: Mean ``(l, h, w)`` of KITTI's Pedestrian, Cyclist and Car (mmdet3d's
#: class order), metres: MonoDLE's ``cls_mean_size`` (release,
#: ``kitti_dataset.py``, given there as ``(h, w, l)``).
KITTI_MEAN_SIZES = ((0.84422524, 1.76255119, 0.66068622),
                    (1.76282397, 1.73698127, 0.59706367),
                    (3.52588311, 1.52563191, 1.62856739))

#: What the scores of the regressed 2D boxes can be (``test_cfg.score_2d``).
SCORES_2D = ('with_depth', 'heatmap')
#: Which ground-truth 2D box the 2D targets come from (``bbox2d_source``):
#: ``gt_instances.bboxes`` or ``gt_instances.bboxes_annotated``.
BBOX2D_SOURCES = dict(projected='bboxes', annotated='bboxes_annotated')
#: KITTI difficulty codes of ``gt_instances_3d.difficulty`` (ddml's
#: converter): easy, moderate, hard; -1 is none (the release's 'UnKnown').
_DIFFICULTY_CODES = (-1, 0, 1, 2)
_TRANSFORMS_HINT = ('(ddml.datasets.transforms) on info files of ddml\'s '
                    'converter (python tools/create_data.py kitti)')
BRANCHES = ('heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d',
            'size_3d', 'heading')

_HEATMAP_CLAMP = 1e-4


def centernet_gaussian_radius(height: float,
                              width: float,
                              min_overlap: float = 0.7) -> float:
    """Heatmap Gaussian radius of CenterNet's original code.

    The smallest of the three roots CenterNet (Zhou et al., 2019,
    ``gaussian_radius`` of its release) takes for a box of ``height`` x
    ``width`` and a minimum IoU ``o``, with ``b_1 = h + w``,
    ``c_1 = w h (1 - o) / (1 + o)``, ``b_2 = 2 (h + w)``,
    ``c_2 = (1 - o) w h``, ``a_3 = 4 o``, ``b_3 = -2 o (h + w)``,
    ``c_3 = (o - 1) w h``:

    ``r = min((b_1 + sqrt(b_1^2 - 4 c_1)) / 2,
    (b_2 + sqrt(b_2^2 - 16 c_2)) / 2,
    (b_3 + sqrt(b_3^2 - 4 a_3 c_3)) / 2)``.

    MonoDLE uses this form (``lib/datasets/utils.py``); mmdet's
    ``gaussian_radius`` solves the same quadratics differently and gives
    smaller radii.
    """
    h, w, o = float(height), float(width), float(min_overlap)
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    r1 = (b1 + math.sqrt(max(b1**2 - 4 * c1, 0.))) / 2
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    r2 = (b2 + math.sqrt(max(b2**2 - 16 * c2, 0.))) / 2
    a3 = 4 * o
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    r3 = (b3 + math.sqrt(max(b3**2 - 4 * a3 * c3, 0.))) / 2
    return min(r1, r2, r3)


def _check_score_2d(value) -> None:
    """Refuse a ``test_cfg.score_2d`` outside :data:`SCORES_2D`."""
    if value not in SCORES_2D:
        raise ValueError(f'MonoDLEHead test_cfg.score_2d must be one of '
                         f'{SCORES_2D}, got {value!r}')


def _as_list(value) -> list:
    return [value] if isinstance(value, Tensor) else list(value)


@MODELS.register_module()
class MonoDLEHead(BaseMono3DDenseHead):
    """MonoDLE's seven-branch CenterNet head.

    Args:
        num_classes (int): Number of classes (heatmap channels).
        in_channels (int): Channels of the input feature map (64 for DLA-34
            + DLA-up; any value for other necks).
        feat_channels (int): Channels ``F`` of each branch's 3x3 conv.
            Defaults to 256 (MonoDLE).
        in_level (int): Which map of the neck's output to read. Defaults
            to 0.
        bbox_coder (dict): :class:`MonoDLECoder` config; its
            ``mean_sizes`` must have one row per class. Defaults to KITTI's
            3 classes.
        loss_heatmap (dict): Heatmap loss. Defaults to mmdet's
            ``GaussianFocalLoss`` (alpha 2, gamma 4).
        loss_offset_2d (dict): 2D centre offset loss. Defaults to L1.
        loss_size_2d (dict): 2D size loss. Defaults to L1.
        loss_offset_3d (dict): 3D centre offset loss. Defaults to L1.
        loss_depth (dict): Depth loss, called as ``(depth, target,
            log_sigma)``. Defaults to ``LaplacianAleatoricUncertaintyLoss``.
        loss_size_3d (dict): Size loss on absolute sizes. Defaults to
            ``DimensionAwareL1Loss``.
        loss_heading (dict): Heading loss. Defaults to
            ``MultiBinHeadingLoss`` with the coder's number of bins.
        htl (dict, optional): ``HierarchicalTaskLearning`` config to weight
            the seven terms (GUPNet; not in MonoDLE). Defaults to None
            (every weight 1, as MonoDLE).
        min_depth (float): Objects nearer than this (metres) are left out
            of training. Defaults to 2 (release).
        max_depth (float): Objects farther than this (metres) are left out
            of training. Defaults to 65 (release).
        skip_3d_on_affine_aug (bool): Skip the depth, 3D offset and 3D
            size terms on images with ``affine_aug`` set. Defaults to True.
        skip_unknown_difficulty (bool): Leave out the objects of no KITTI
            difficulty (code -1 in ``gt_instances_3d.difficulty``: under
            25 px, truncation > 0.5 or occlusion 3, by the rule of ddml's
            converter, MonoDLE's ``get_obj_level`` with its ``+1`` px
            height): no heatmap peak, no term of any loss, as the release
            (``lib/datasets/kitti/kitti_dataset.py:197``). Needs the codes
            in the batch: ``LoadObjectDifficulty``,
            ``AffineResizeKeepInstanceKeys`` and
            ``Pack3DDetInputsWithDifficulty`` with ``'gt_difficulty'``
            (``ddml.datasets.transforms``). Defaults to False (every object
            is trained).
        bbox2d_source (str): The ground-truth 2D box of the 2D targets
            (2D offset, 2D size, heatmap radius): ``'projected'``,
            ``gt_instances.bboxes`` (mmdet3d's ``cam_instances`` box, the
            projection of the 3D box clipped to the image), or
            ``'annotated'``, ``gt_instances.bboxes_annotated`` (label_2's
            box; the release's ``bbox2d_type: 'anno'``,
            ``kitti_dataset.py:31``), which needs ``LoadAnnotatedBoxes2D``,
            ``RandomFlip3DKeepInstanceKeys``,
            ``AffineResizeKeepInstanceKeys`` and
            ``Pack3DDetInputsWithDifficulty`` with
            ``'gt_bboxes_annotated'``. Defaults to 'projected'.
        min_overlap (float): Minimum IoU of the heatmap radius. Defaults
            to 0.7.
        heatmap_bias (float): Initial bias of the heatmap logits
            (``-2.19``: prior 0.1). Defaults to -2.19.
        reg_init_std (float): Std of the normal initialisation of the
            regression branches (biases 0). Defaults to 0.001.
        train_cfg (dict, optional): Unused.
        test_cfg (dict, optional): ``topk`` (50), ``local_maximum_kernel``
            (3), ``score_thr`` (0.2, on the heatmap peak, as the release),
            ``pred_2d`` (True: also return the regressed 2D boxes),
            ``score_2d`` (``'with_depth'``: the 2D boxes carry the 3D
            score, as the release; ``'heatmap'``: the heatmap peak alone,
            since the depth confidence says nothing about the 2D box).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 feat_channels: int = 256,
                 in_level: int = 0,
                 bbox_coder: ConfigType = dict(
                     type='MonoDLECoder', mean_sizes=KITTI_MEAN_SIZES),
                 loss_heatmap: ConfigType = dict(
                     type='mmdet.GaussianFocalLoss', loss_weight=1.0),
                 loss_offset_2d: ConfigType = dict(
                     type='mmdet.L1Loss', loss_weight=1.0),
                 loss_size_2d: ConfigType = dict(
                     type='mmdet.L1Loss', loss_weight=1.0),
                 loss_offset_3d: ConfigType = dict(
                     type='mmdet.L1Loss', loss_weight=1.0),
                 loss_depth: ConfigType = dict(
                     type='LaplacianAleatoricUncertaintyLoss',
                     loss_weight=1.0),
                 loss_size_3d: ConfigType = dict(
                     type='DimensionAwareL1Loss', loss_weight=1.0),
                 loss_heading: OptConfigType = None,
                 htl: OptConfigType = None,
                 min_depth: float = MIN_DEPTH,
                 max_depth: float = MAX_DEPTH,
                 skip_3d_on_affine_aug: bool = True,
                 skip_unknown_difficulty: bool = False,
                 bbox2d_source: str = 'projected',
                 min_overlap: float = 0.7,
                 heatmap_bias: float = -2.19,
                 reg_init_std: float = 0.001,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError('MonoDLEHead.num_classes must be a positive '
                             f'int, got {num_classes!r}')
        if bbox2d_source not in BBOX2D_SOURCES:
            raise ValueError(f'MonoDLEHead.bbox2d_source must be one of '
                             f'{tuple(BBOX2D_SOURCES)}, got '
                             f'{bbox2d_source!r}')
        if not min_depth < max_depth:
            raise ValueError(f'MonoDLEHead.min_depth ({min_depth}) must be '
                             f'smaller than max_depth ({max_depth})')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.in_level = in_level
        self.bbox_coder: MonoDLECoder = TASK_UTILS.build(bbox_coder)
        if self.bbox_coder.num_classes != num_classes:
            raise ValueError(
                f'MonoDLEHead: bbox_coder.mean_sizes has '
                f'{self.bbox_coder.num_classes} rows but num_classes is '
                f'{num_classes}; give one (l, h, w) mean per class')
        self.num_heading_bins = self.bbox_coder.num_heading_bins
        if loss_heading is None:
            loss_heading = dict(
                type='MultiBinHeadingLoss',
                num_bins=self.num_heading_bins,
                loss_weight=1.0)
        self.loss_heatmap = MODELS.build(loss_heatmap)
        self.loss_offset_2d = MODELS.build(loss_offset_2d)
        self.loss_size_2d = MODELS.build(loss_size_2d)
        self.loss_offset_3d = MODELS.build(loss_offset_3d)
        self.loss_depth = MODELS.build(loss_depth)
        self.loss_size_3d = MODELS.build(loss_size_3d)
        self.loss_heading = MODELS.build(loss_heading)
        self.htl = MODELS.build(htl) if htl is not None else None
        if self.htl is not None and set(self.htl.tasks) != set(BRANCHES):
            raise ValueError(f'MonoDLEHead.htl must weight the tasks '
                             f'{list(BRANCHES)}, got {self.htl.tasks}')
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.skip_3d_on_affine_aug = bool(skip_3d_on_affine_aug)
        self.skip_unknown_difficulty = bool(skip_unknown_difficulty)
        self.bbox2d_source = bbox2d_source
        self.min_overlap = float(min_overlap)
        self.heatmap_bias = float(heatmap_bias)
        self.reg_init_std = float(reg_init_std)
        self.train_cfg = train_cfg
        test_defaults = dict(
            topk=50, local_maximum_kernel=3, score_thr=0.2, pred_2d=True,
            score_2d='with_depth')
        test_defaults.update(test_cfg or {})
        _check_score_2d(test_defaults['score_2d'])
        self.test_cfg = ConfigDict(test_defaults)

        out_channels = dict(
            heatmap=num_classes,
            offset_2d=2,
            size_2d=2,
            depth=2,
            offset_3d=2,
            size_3d=3,
            heading=2 * self.num_heading_bins)
        for name in BRANCHES:
            self.add_module(
                name,
                nn.Sequential(
                    nn.Conv2d(in_channels, feat_channels, 3, padding=1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(feat_channels, out_channels[name], 1)))

    def init_weights(self) -> None:
        """The release's initialisation: heatmap bias -2.19; regression
        branches N(0, 0.001) with zero biases."""
        super().init_weights()
        nn.init.constant_(self.heatmap[-1].bias, self.heatmap_bias)
        for name in BRANCHES[1:]:
            for m in getattr(self, name).modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=self.reg_init_std)
                    nn.init.constant_(m.bias, 0.)

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def forward(self, x: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Raw outputs of the seven branches on one feature map.

        Args:
            x (Tensor | Sequence[Tensor]): Neck output; map ``in_level``
                (shape (B, in_channels, H, W)) is read.

        Returns:
            tuple[Tensor]: ``heatmap`` (B, classes, H, W) logits,
            ``offset_2d``, ``size_2d``, ``depth`` (raw, log std),
            ``offset_3d`` (B, 2, H, W), ``size_3d`` (B, 3, H, W) and
            ``heading`` (B, 2 * bins, H, W).
        """
        levels = _as_list(x)
        if not -len(levels) <= self.in_level < len(levels):
            raise IndexError(
                f'MonoDLEHead.in_level={self.in_level} but the neck returned '
                f'{len(levels)} map(s); set in_level to 0..{len(levels) - 1}')
        feat = levels[self.in_level]
        return tuple(getattr(self, name)(feat) for name in BRANCHES)

    @staticmethod
    def _stride(batch_img_metas: List[dict],
                feat_hw: Tuple[int, int]) -> Tuple[float, float]:
        """``(stride_x, stride_y)`` of the map from the (padded) input."""
        meta = batch_img_metas[0]
        shape = meta.get('batch_input_shape', meta.get('pad_shape',
                                                       meta.get('img_shape')))
        if shape is None:
            raise KeyError('MonoDLEHead needs batch_input_shape, pad_shape or '
                           'img_shape in the image metas to find the stride')
        return float(shape[1]) / feat_hw[1], float(shape[0]) / feat_hw[0]

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def get_targets(self, batch_gt_instances_3d: InstanceList,
                    batch_gt_instances: InstanceList,
                    feat_shape: Sequence[int], batch_img_metas: List[dict],
                    stride: Tuple[float, float]) -> Dict[str, Tensor]:
        """Heatmap and per-object targets of a batch.

        Args:
            batch_gt_instances_3d (list[:obj:`InstanceData`]): Per image
                ``bboxes_3d``, ``labels_3d``, ``centers_2d`` (projected 3D
                centres, input pixels) and, with
                ``skip_unknown_difficulty``, ``difficulty``.
            batch_gt_instances (list[:obj:`InstanceData`]): Per image
                ``bboxes`` (or ``bboxes_annotated``, see ``bbox2d_source``;
                input pixels), index-aligned with the 3D ones.
            feat_shape (Sequence[int]): ``(B, C, H, W)`` of the outputs.
            batch_img_metas (list[dict]): Image metas (``affine_aug``).
            stride (tuple[float, float]): ``(stride_x, stride_y)``.

        Returns:
            dict[str, Tensor]: ``heatmap`` (B, classes, H, W) and, for the M
            kept objects of the batch, ``batch_idx``, ``labels``,
            ``mask_3d`` (bool) and the fields of
            :meth:`MonoDLECoder.encode`.
        """
        bs, _, feat_h, feat_w = feat_shape
        device = batch_gt_instances_3d[0].labels_3d.device
        heatmap = torch.zeros((bs, self.num_classes, feat_h, feat_w),
                              device=device)
        per_image = []
        for b in range(bs):
            gt3d = batch_gt_instances_3d[b]
            num = len(gt3d.labels_3d)
            boxes_2d = self._boxes_2d(batch_gt_instances[b], b)
            if boxes_2d.shape[0] != num:
                raise ValueError(
                    f'MonoDLEHead regresses 2D boxes: image {b} has {num} '
                    f'3D objects but {boxes_2d.shape[0]} 2D boxes. Load them '
                    'together (LoadAnnotations3D with with_bbox=True and '
                    "'gt_bboxes' in Pack3DDetInputs.keys) so that they stay "
                    'index-aligned')
            if num == 0:
                continue
            labels = gt3d.labels_3d.to(device).long()
            enc = self.bbox_coder.encode(
                gt3d.bboxes_3d, labels.clamp(0, self.num_classes - 1),
                gt3d.centers_2d.to(device).float(),
                boxes_2d.to(device).float(), stride)
            cells = enc['cells']
            keep = (labels >= 0) & (labels < self.num_classes) & \
                (enc['depth'] >= self.min_depth) & \
                (enc['depth'] <= self.max_depth) & \
                (cells[:, 0] >= 0) & (cells[:, 0] < feat_w) & \
                (cells[:, 1] >= 0) & (cells[:, 1] < feat_h) & \
                torch.isfinite(enc['offset_2d']).all(1) & \
                torch.isfinite(enc['size_2d']).all(1)
            if self.skip_unknown_difficulty:
                keep &= self._known_difficulty(gt3d, b).to(device)
            if not bool(keep.any()):
                continue
            enc = {k: v[keep] for k, v in enc.items()}
            labels = labels[keep]
            for j in range(labels.shape[0]):
                w, h = enc['size_2d'][j].tolist()
                radius = max(
                    0,
                    int(centernet_gaussian_radius(h, w, self.min_overlap)))
                cx, cy = enc['cells'][j].tolist()
                gen_gaussian_target(heatmap[b, int(labels[j])], [cx, cy],
                                    radius)
            augmented = bool(batch_img_metas[b].get('affine_aug', False))
            skip_3d = self.skip_3d_on_affine_aug and augmented
            enc['labels'] = labels
            enc['batch_idx'] = torch.full_like(labels, b)
            enc['mask_3d'] = torch.full_like(
                labels, not skip_3d, dtype=torch.bool)
            per_image.append(enc)
        if per_image:
            targets = {
                k: torch.cat([e[k] for e in per_image])
                for k in per_image[0]
            }
        else:
            targets = self._empty_targets(device)
        targets['heatmap'] = heatmap
        return targets

    def _boxes_2d(self, gt_instances: InstanceData, index: int) -> Tensor:
        """The ground-truth 2D boxes of image ``index`` that
        ``bbox2d_source`` names, shape (N, 4)."""
        field = BBOX2D_SOURCES[self.bbox2d_source]
        boxes = gt_instances.get(field, None)
        if boxes is None:
            if self.bbox2d_source == 'projected':
                hint = ("LoadAnnotations3D with with_bbox=True and "
                        "'gt_bboxes' in Pack3DDetInputs.keys")
            else:
                hint = ('LoadAnnotatedBoxes2D after LoadAnnotations3D, '
                        'RandomFlip3DKeepInstanceKeys and '
                        'AffineResizeKeepInstanceKeys in place of '
                        'RandomFlip3D and AffineResize, and '
                        "Pack3DDetInputsWithDifficulty with "
                        f"'gt_bboxes_annotated' in its keys {_TRANSFORMS_HINT}"
                        ", or set MonoDLEHead.bbox2d_source='projected'")
            raise KeyError(
                f'MonoDLEHead.bbox2d_source={self.bbox2d_source!r} reads '
                f'gt_instances.{field}, which image {index} lacks; use '
                f'{hint}')
        return torch.as_tensor(boxes)

    def _known_difficulty(self, gt_instances_3d: InstanceData,
                          index: int) -> Tensor:
        """Which objects of image ``index`` have a KITTI difficulty
        (``skip_unknown_difficulty``), bool (N, )."""
        codes = gt_instances_3d.get('difficulty', None)
        if codes is None:
            raise KeyError(
                'MonoDLEHead.skip_unknown_difficulty=True needs the KITTI '
                'difficulty of every object in gt_instances_3d.difficulty, '
                f'which image {index} lacks; use LoadObjectDifficulty after '
                'LoadAnnotations3D, AffineResizeKeepInstanceKeys in place of '
                'AffineResize and Pack3DDetInputsWithDifficulty with '
                f"'gt_difficulty' in its keys {_TRANSFORMS_HINT}, or set "
                'skip_unknown_difficulty=False')
        codes = torch.as_tensor(codes).reshape(-1).long()
        valid = torch.zeros_like(codes, dtype=torch.bool)
        for code in _DIFFICULTY_CODES:
            valid |= codes == code
        if not bool(valid.all()):
            raise ValueError(
                f'gt_instances_3d.difficulty of image {index} has codes '
                f'{sorted(set(codes[~valid].tolist()))}; expected '
                f'{_DIFFICULTY_CODES} (-1: no difficulty), as ddml\'s '
                'converter writes them')
        return codes >= 0

    def _empty_targets(self, device) -> Dict[str, Tensor]:
        zeros = dict(
            cells=(0, 2), offset_2d=(0, 2), size_2d=(0, 2), offset_3d=(0, 2),
            depth=(0, ), size_3d=(0, 3), dims=(0, 3), alpha=(0, ),
            heading_bin=(0, ), heading_res=(0, ), labels=(0, ),
            batch_idx=(0, ), mask_3d=(0, ))
        out = {k: torch.zeros(s, device=device) for k, s in zeros.items()}
        for k in ('cells', 'heading_bin', 'labels', 'batch_idx'):
            out[k] = out[k].long()
        out['mask_3d'] = out['mask_3d'].bool()
        return out

    def loss_by_feat(
            self,
            heatmap: Tensor,
            offset_2d: Tensor,
            size_2d: Tensor,
            depth: Tensor,
            offset_3d: Tensor,
            size_3d: Tensor,
            heading: Tensor,
            batch_gt_instances_3d: InstanceList,
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None
    ) -> Dict[str, Tensor]:
        """MonoDLE's seven loss terms (see the module docstring).

        Args:
            heatmap, offset_2d, size_2d, depth, offset_3d, size_3d, heading
                (Tensor): Outputs of :meth:`forward`.
            batch_gt_instances_3d (list[:obj:`InstanceData`]): 3D ground
                truth per image.
            batch_gt_instances (list[:obj:`InstanceData`]): 2D ground truth
                per image (``bboxes``).
            batch_img_metas (list[dict]): Image metas.
            batch_gt_instances_ignore (list, optional): Unused.

        Returns:
            dict[str, Tensor]: ``loss_heatmap``, ``loss_offset_2d``,
            ``loss_size_2d``, ``loss_offset_3d``, ``loss_depth``,
            ``loss_size_3d``, ``loss_heading`` (weighted by HTL when set;
            the weights are then logged as ``htl_weight_<term>``).
        """
        stride = self._stride(batch_img_metas, heatmap.shape[-2:])
        targets = self.get_targets(batch_gt_instances_3d, batch_gt_instances,
                                   heatmap.shape, batch_img_metas, stride)
        prob = heatmap.sigmoid().clamp(_HEATMAP_CLAMP, 1 - _HEATMAP_CLAMP)
        target_heatmap = targets['heatmap']
        num_peaks = max(1, int(target_heatmap.eq(1).sum()))
        terms = dict(
            heatmap=self.loss_heatmap(
                prob, target_heatmap, avg_factor=num_peaks))

        b, cells = targets['batch_idx'], targets['cells']

        def gather(out: Tensor) -> Tensor:
            """Outputs at the objects' cells, shape (M, channels)."""
            return out[b, :, cells[:, 1], cells[:, 0]]

        terms['offset_2d'] = self.loss_offset_2d(
            gather(offset_2d), targets['offset_2d'])
        terms['size_2d'] = self.loss_size_2d(
            gather(size_2d), targets['size_2d'])

        m3d = targets['mask_3d']
        terms['offset_3d'] = self.loss_offset_3d(
            gather(offset_3d)[m3d], targets['offset_3d'][m3d])
        depth_out = gather(depth)[m3d]
        terms['depth'] = self.loss_depth(
            self.bbox_coder.depth_from_raw(depth_out[:, 0]),
            targets['depth'][m3d], depth_out[:, 1])
        mean_sizes = self.bbox_coder.mean_size_of(targets['labels'][m3d])
        terms['size_3d'] = self.loss_size_3d(
            gather(size_3d)[m3d] + mean_sizes.to(size_3d),
            targets['dims'][m3d])

        heading_out = gather(heading)
        nb = self.num_heading_bins
        terms['heading'] = self.loss_heading(heading_out[:, :nb],
                                             heading_out[:, nb:],
                                             targets['heading_bin'],
                                             targets['heading_res'])
        losses = {}
        if self.htl is not None:
            weights = self.htl(terms)
            for name in BRANCHES:
                losses[f'loss_{name}'] = terms[name] * weights[name].to(
                    terms[name])
                losses[f'htl_weight_{name}'] = weights[name].detach().clone()
        else:
            losses = {f'loss_{name}': terms[name] for name in BRANCHES}
        return losses

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def predict_by_feat(self,
                        heatmap: Tensor,
                        offset_2d: Tensor,
                        size_2d: Tensor,
                        depth: Tensor,
                        offset_3d: Tensor,
                        size_3d: Tensor,
                        heading: Tensor,
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: OptConfigType = None,
                        rescale: Optional[bool] = None
                        ) -> Tuple[InstanceList, InstanceList]:
        """Decode the top-K heatmap peaks of every image.

        Centres and 2D boxes are mapped to the original image through the
        inverse of AffineResize's ``trans_mat`` when the metas have it
        (``cam2img`` then describes the original image); otherwise
        ``cam2img`` must describe the network input, and the 2D boxes are
        divided by ``scale_factor``.

        Args:
            heatmap, offset_2d, size_2d, depth, offset_3d, size_3d, heading
                (Tensor): Outputs of :meth:`forward`.
            batch_img_metas (list[dict]): Metas with ``cam2img`` (and
                ``trans_mat``, ``box_type_3d``).
            cfg (dict, optional): Test config; defaults to ``test_cfg``.
            rescale (bool, optional): Unused (boxes are always returned in
                the original image).

        Returns:
            tuple[list[:obj:`InstanceData`], list[:obj:`InstanceData`]]: Per
            image, the 3D results (``bboxes_3d``, ``scores_3d``,
            ``labels_3d``) and the 2D results (``bboxes``, ``scores``,
            ``labels``; empty when ``pred_2d`` is False). ``score`` =
            heatmap peak x ``exp(-s)`` (2D: see ``score_2d``).
        """
        test_cfg = ConfigDict(dict(self.test_cfg))
        test_cfg.update(cfg or {})
        cfg = test_cfg
        _check_score_2d(cfg.score_2d)
        stride = self._stride(batch_img_metas, heatmap.shape[-2:])
        bs, _, feat_h, feat_w = heatmap.shape
        prob = heatmap.sigmoid().clamp(_HEATMAP_CLAMP, 1 - _HEATMAP_CLAMP)
        prob = get_local_maximum(prob, kernel=cfg.local_maximum_kernel)
        topk = min(int(cfg.topk), prob[0].numel())
        peaks, inds, classes, ys, xs = get_topk_from_heatmap(prob, k=topk)
        outputs = dict(offset_2d=offset_2d, size_2d=size_2d, depth=depth,
                       offset_3d=offset_3d, size_3d=size_3d, heading=heading)
        nb = self.num_heading_bins
        results_3d, results_2d = [], []
        for i, meta in enumerate(batch_img_metas):
            keep = peaks[i] >= cfg.score_thr
            idx = inds[i][keep]
            gathered = {
                k: v[i].reshape(v.shape[1], -1)[:, idx].t()
                for k, v in outputs.items()
            }
            cells = torch.stack([xs[i][keep], ys[i][keep].float()], dim=1)
            labels = classes[i][keep].long()
            head = gathered['heading']
            heading_bin = head[:, :nb].argmax(dim=1)
            heading_res = torch.gather(head[:, nb:], 1,
                                       heading_bin[:, None])[:, 0]
            cam2img = heatmap.new_tensor(np.asarray(meta['cam2img']))
            feat_to_img = None
            if meta.get('trans_mat') is not None:
                feat_to_img = torch.linalg.inv(
                    heatmap.new_tensor(np.asarray(meta['trans_mat'])))
            boxes, bboxes_2d = self.bbox_coder.decode(
                cells, gathered['offset_2d'], gathered['size_2d'],
                gathered['offset_3d'],
                self.bbox_coder.depth_from_raw(gathered['depth'][:, 0]),
                gathered['size_3d'], heading_bin, heading_res, labels,
                cam2img, stride, feat_to_img)
            if feat_to_img is None and meta.get('scale_factor') is not None:
                scale = bboxes_2d.new_tensor(
                    np.asarray(meta['scale_factor'])[:2]).repeat(2)
                bboxes_2d = bboxes_2d / scale
            scores = peaks[i][keep] * torch.exp(-gathered['depth'][:, 1])
            box_type = meta.get('box_type_3d', CameraInstance3DBoxes)
            res_3d = InstanceData()
            res_3d.bboxes_3d = box_type(
                boxes, box_dim=self.bbox_coder.code_size,
                origin=(0.5, 1.0, 0.5))
            res_3d.scores_3d = scores
            res_3d.labels_3d = labels
            results_3d.append(res_3d)
            res_2d = InstanceData()
            if cfg.pred_2d:
                res_2d.bboxes = bboxes_2d
                res_2d.scores = (peaks[i][keep].clone()
                                 if cfg.score_2d == 'heatmap' else
                                 scores.clone())
                res_2d.labels = labels.clone()
            results_2d.append(res_2d)
        return results_3d, results_2d
