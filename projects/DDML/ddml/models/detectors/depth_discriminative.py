"""DepthDiscriminativeDetector: DDML's training-time wrapper.

The wrapper holds any single-stage mmdet3d monocular detector (SMOKE,
FCOS3D, PGD, ...) under the attribute ``detector`` and adds, in ``loss``
mode only, depth-discriminative losses on one of its feature maps:

* ``loss_qi``: :class:`QuasiIsometricLoss` on object descriptors
  (``k x k``-pooled features at the GT projected 3D centres) and depths;
* ``loss_metric``: :class:`MultiRangeDepthMetricLoss` on all pairs of
  object descriptors;
* ``loss_obj_depth``: :class:`ObjectDepthMapHead` against an object depth
  map painted from the GT 2D boxes;
* ``loss_dense_metric``: :class:`MultiRangeDepthMetricLoss` on feature cells
  paired by shifting the map (``forward_shifted_pairs``) on the painted
  depth map.

A batch flows through :meth:`DepthDiscriminativeDetector.loss`:
``extract_feat`` -> the wrapped head's ``loss`` -> ``aux_feature_map``
(the map at ``feature_level`` and its stride) -> ``loss_auxiliary``
(``object_descriptors`` -> QI / metric loss over their pairs; the depth map
head's ``loss``; ``depth_map_targets`` -> the dense metric loss). Targets
(painting, shift-and-pair sampling) come from :mod:`ddml.models.targets`.

Two sample rules of the authors' release (mingyuShin/DDML-M3DOD, commit
c378da3) are options, off by default: ``skip_aux_on_affine_aug`` computes
the auxiliary losses only on images that were not randomly shifted or
scaled, and ``min_difficulty`` leaves objects below a KITTI difficulty out
of the descriptors and the depth-map targets
(:meth:`DepthDiscriminativeDetector.auxiliary_ground_truth`).

In ``predict`` and ``tensor`` modes it *is* the wrapped detector: the call is
forwarded unchanged and no auxiliary module runs. Checkpoint keys of the
wrapped detector are ``detector.*``;
:func:`export_baseline_checkpoint` turns a wrapper checkpoint into one the
plain baseline config loads strictly.
"""
import copy
import logging
import warnings
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet3d.models.detectors import Base3DDetector
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample
from mmdet3d.structures.det3d_data_sample import (ForwardResults,
                                                  OptSampleList, SampleList)
from mmdet3d.utils import ConfigType, OptConfigType, OptMultiConfig
from ..defaults import DESCRIPTOR_POOL, FEATURE_LEVEL, MAX_DEPTH, MIN_DEPTH
from ..descriptors import (ObjectDescriptors, collect_object_descriptors,
                           gather_object_descriptors, infer_feature_stride)
from ..targets import paint_batch_depth_targets

LossCfg = Optional[Union[dict, nn.Module]]

# Keys of the auxiliary losses; they must not collide with the baseline's.
AUX_LOSS_KEYS = ('loss_qi', 'loss_metric', 'loss_obj_depth',
                 'loss_dense_metric')
# Options of ``dense_metric_loss`` that configure the pair sampling and are
# passed to its ``forward_shifted_pairs`` instead of its constructor.
DENSE_PAIR_KEYS = ('unit_size', 'shifts', 'cross_image')
# KITTI difficulty levels in the order of their codes in mmdet3d's KITTI
# infos (``instances[*]['difficulty']``: 0, 1, 2; -1 for an object of none
# of them, the release's 'UnKnown').
KITTI_DIFFICULTIES = ('easy', 'moderate', 'hard')
# The metainfo key mmdet3d's RandomShiftScale / AffineResize write.
AFFINE_AUG_KEY = 'affine_aug'


def _build_registered(cfg: LossCfg, option: str) -> Optional[nn.Module]:
    """Build ``cfg`` from mmdet3d's MODELS with an error naming ``option``."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'{option} must be None, a module or a config dict '
                        f"with a 'type', got {cfg!r}")
    loss_type = cfg['type']
    if isinstance(loss_type, str) and MODELS.get(loss_type) is None:
        raise KeyError(
            f'{option}: type {loss_type!r} is not registered in mmdet3d\'s '
            'MODELS registry. Check the spelling, and import the package '
            "that registers it (for ddml: custom_imports=dict(imports="
            "['ddml'], allow_failed_imports=False) in the config, or "
            '`import ddml`), or set '
            f'{option}=None to disable it')
    return MODELS.build(cfg)


class _ScaleGrad(torch.autograd.Function):
    """Identity whose backward multiplies the gradient by ``scale``."""

    @staticmethod
    def forward(ctx, value: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:
        return grad * ctx.scale, None


@MODELS.register_module()
class DepthDiscriminativeDetector(Base3DDetector):
    """Wrap a monocular 3D detector with DDML's training-only losses.

    Args:
        detector (dict or :obj:`nn.Module`): Config (or instance) of the
            wrapped detector. It must provide ``extract_feat(inputs)`` and
            ``bbox_head.loss(feats, data_samples)`` (mmdet3d's single-stage
            monocular detectors: ``SMOKEMono3D``, ``FCOSMono3D``).
        feature_level (int): Index into the tuple/list returned by
            ``extract_feat`` of the map the auxiliary parts read. Defaults to
            ``defaults.FEATURE_LEVEL``.
        descriptor_pool (int): Odd size ``k`` of the ``k x k`` average
            pooling of object descriptors. Defaults to
            ``defaults.DESCRIPTOR_POOL``.
        qi_loss (dict, optional): Quasi-isometric loss on object descriptors
            (``loss(descriptors (N, C), depths (N, ))``), logged as
            ``loss_qi``. None disables it. Defaults to
            ``dict(type='QuasiIsometricLoss')``.
        depth_map_head (dict, optional): Auxiliary object depth map head,
            logged as ``loss_obj_depth``. ``in_channels`` defaults to the
            wrapped ``bbox_head.in_channels``; ``min_depth``/``max_depth``
            (the depth range the head's targets are painted in) to this
            wrapper's. None disables it. Defaults to
            ``dict(type='ObjectDepthMapHead')``.
        metric_loss (dict, optional): ``MultiRangeDepthMetricLoss`` applied
            to all pairs of object descriptors (``forward_all_pairs``),
            logged as ``loss_metric``. Defaults to None.
        dense_metric_loss (dict, optional): ``MultiRangeDepthMetricLoss``
            applied to feature cells paired by shifting the map
            (``forward_shifted_pairs``) on the object depth map of
            ``[min_depth, max_depth]``, logged as ``loss_dense_metric``.
            The keys ``unit_size``, ``shifts`` and ``cross_image`` configure
            the pairing, the rest build the loss. Defaults to None.
        min_depth (float): Objects nearer than this (metres) get no
            descriptor and are not painted for ``dense_metric_loss`` (nor,
            unless it sets its own, by the depth map head). Defaults to
            ``defaults.MIN_DEPTH``.
        max_depth (float): Objects farther than this (metres), likewise.
            Defaults to ``defaults.MAX_DEPTH``.
        ignore_classes (Sequence[int]): ``labels_3d`` that get no
            descriptor. Defaults to ().
        pair_scope (str): ``'batch'`` forms descriptor pairs across the
            whole (global) batch, ``'image'`` only within each image (losses
            averaged over images with at least two objects). Defaults to
            ``'batch'``.
        gather_across_processes (bool): With ``pair_scope='batch'``, gather
            descriptors and depths from all processes so that pairs span the
            global batch (gradients flow to each process's own
            descriptors, scaled by the world size so that after DDP's
            averaging they equal those of one process holding the global
            batch). No-op when not distributed. Defaults to True.
        skip_aux_on_affine_aug (bool): Compute the auxiliary losses only on
            the images that were not randomly shifted or scaled, as the
            release does (its dataset zeroes ``mask_3d`` and the object
            depth map of a randomly cropped image, so neither the QI loss
            nor the depth-map loss sees it: ``lib/datasets/kitti/
            kitti_dataset.py``, ``lib/losses/centernet_loss.py``); the
            depth labels of such an image no longer match its apparent
            scale. The losses then equal those of the batch without those
            images (the dense metric loss pairs the remaining images'
            cells, across images too). Reads the ``affine_aug`` metainfo of
            every sample, which mmdet3d's ``RandomShiftScale`` sets (True
            when it shifted/scaled the image) and ``AffineResize`` sets to
            False when no ``RandomShiftScale`` ran before it;
            ``Pack3DDetInputs`` packs it with its default ``meta_keys`` (a
            config that sets ``meta_keys`` must list ``'affine_aug'``).
            Raises a KeyError naming this option when a sample has no
            mark (e.g. a pipeline without ``AffineResize``). Defaults to
            False.
        min_difficulty (str, optional): ``'easy'``, ``'moderate'`` or
            ``'hard'``: objects of a lower KITTI difficulty get no
            descriptor and are not painted into the depth-map targets
            (``'hard'`` keeps easy, moderate and hard objects and leaves out
            the others, as the release leaves out its 'UnKnown' objects:
            ``get_obj_level`` in ``lib/datasets/kitti/kitti_utils.py``,
            applied in ``kitti_dataset.py``). KITTI's levels, from the label
            2D box height, occlusion and truncation: easy >= 40 px,
            occlusion 0, truncation <= 0.15; moderate >= 25 px, occlusion
            <= 1, truncation <= 0.3; hard >= 25 px, occlusion <= 2,
            truncation <= 0.5. Reads ``gt_instances_3d.difficulty`` (one
            code per object: 0 easy, 1 moderate, 2 hard, -1 none; ddml's
            converter writes the codes of ``cam_instances`` by the
            release's height rule ``y2 - y1 + 1 >= 40``, mmdet3d's
            ``instances`` use ``y2 - y1 > 40``:
            ``ddml.data_tools.kitti_converter.kitti_difficulty``).
            mmdet3d's mono3d pipeline does not carry it: use the
            info files of ddml's converter (``tools/create_data.py``) and
            the transforms of :mod:`ddml.datasets.transforms` (as the
            ``ddml-release_*`` configs do); a KeyError naming this option
            is raised when a sample lacks it. None keeps every object.
            Defaults to None.
        data_preprocessor (dict, optional): Defaults to None, which reuses
            the wrapped detector's data preprocessor, so inputs are
            preprocessed exactly as for the plain detector, and once.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 detector: Union[ConfigType, nn.Module],
                 feature_level: int = FEATURE_LEVEL,
                 descriptor_pool: int = DESCRIPTOR_POOL,
                 qi_loss: LossCfg = dict(type='QuasiIsometricLoss'),
                 depth_map_head: LossCfg = dict(type='ObjectDepthMapHead'),
                 metric_loss: LossCfg = None,
                 dense_metric_loss: LossCfg = None,
                 min_depth: float = MIN_DEPTH,
                 max_depth: float = MAX_DEPTH,
                 ignore_classes: Sequence[int] = (),
                 pair_scope: str = 'batch',
                 gather_across_processes: bool = True,
                 skip_aux_on_affine_aug: bool = False,
                 min_difficulty: Optional[str] = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        wrapped = MODELS.build(detector) if isinstance(detector, dict) \
            else detector
        self._check_detector(wrapped)
        if data_preprocessor is None:
            data_preprocessor = wrapped.data_preprocessor
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.detector = wrapped

        if not isinstance(feature_level, int) or isinstance(
                feature_level, bool):
            raise TypeError('feature_level must be an int index into the '
                            'feature maps returned by extract_feat, got '
                            f'{feature_level!r}')
        if not isinstance(descriptor_pool, int) or descriptor_pool < 1 \
                or descriptor_pool % 2 == 0:
            raise ValueError('descriptor_pool must be a positive odd int '
                             f'(e.g. {DESCRIPTOR_POOL}), got '
                             f'{descriptor_pool!r}')
        if pair_scope not in ('batch', 'image'):
            raise ValueError("pair_scope must be 'batch' or 'image', got "
                             f'{pair_scope!r}')
        if not min_depth < max_depth:
            raise ValueError(f'min_depth ({min_depth}) must be smaller than '
                             f'max_depth ({max_depth})')
        if not isinstance(skip_aux_on_affine_aug, bool):
            raise TypeError('skip_aux_on_affine_aug must be True or False, '
                            f'got {skip_aux_on_affine_aug!r}')
        if min_difficulty is not None and \
                min_difficulty not in KITTI_DIFFICULTIES:
            raise ValueError(
                f'min_difficulty must be None or one of {KITTI_DIFFICULTIES}'
                f' (KITTI difficulty levels), got {min_difficulty!r}')
        self.feature_level = feature_level
        self.descriptor_pool = descriptor_pool
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.ignore_classes = tuple(int(c) for c in ignore_classes)
        self.pair_scope = pair_scope
        self.gather_across_processes = bool(gather_across_processes)
        self.skip_aux_on_affine_aug = skip_aux_on_affine_aug
        self.min_difficulty = min_difficulty

        self.qi_loss = _build_registered(qi_loss, 'qi_loss')
        self.metric_loss = _build_registered(metric_loss, 'metric_loss')
        if self.metric_loss is not None and not hasattr(
                self.metric_loss, 'forward_all_pairs'):
            raise TypeError(
                'metric_loss must provide forward_all_pairs(descriptors, '
                'depths) (e.g. MultiRangeDepthMetricLoss), '
                f'{type(self.metric_loss).__name__} does not')
        self.dense_pair_cfg: Dict = {}
        if isinstance(dense_metric_loss, dict):
            dense_metric_loss = dict(dense_metric_loss)
            self.dense_pair_cfg = {
                key: dense_metric_loss.pop(key)
                for key in DENSE_PAIR_KEYS if key in dense_metric_loss
            }
        self.dense_metric_loss = _build_registered(dense_metric_loss,
                                                   'dense_metric_loss')
        if self.dense_metric_loss is not None and not hasattr(
                self.dense_metric_loss, 'forward_shifted_pairs'):
            raise TypeError(
                'dense_metric_loss must provide forward_shifted_pairs(feats, '
                'depth, unit_size, shifts, cross_image) (e.g. '
                'MultiRangeDepthMetricLoss), '
                f'{type(self.dense_metric_loss).__name__} does not')
        if isinstance(depth_map_head, dict):
            depth_map_head = self._complete_head_cfg(depth_map_head)
        self.depth_map_head = _build_registered(depth_map_head,
                                                'depth_map_head')
        if self.depth_map_head is not None and not callable(
                getattr(self.depth_map_head, 'loss', None)):
            raise TypeError(
                'depth_map_head must provide loss(feat, batch_data_samples, '
                'stride) (e.g. ObjectDepthMapHead), '
                f'{type(self.depth_map_head).__name__} does not')

    # ------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------
    @staticmethod
    def _check_detector(detector: nn.Module) -> None:
        name = type(detector).__name__
        missing = []
        if not callable(getattr(detector, 'extract_feat', None)):
            missing.append('extract_feat(batch_inputs_dict)')
        bbox_head = getattr(detector, 'bbox_head', None)
        if bbox_head is None:
            missing.append('bbox_head')
        elif not callable(getattr(bbox_head, 'loss', None)):
            missing.append('bbox_head.loss(feats, batch_data_samples)')
        if missing:
            raise TypeError(
                f'DepthDiscriminativeDetector cannot wrap {name}: it has no '
                f'{" and no ".join(missing)}. Wrap a single-stage monocular '
                'detector whose loss is bbox_head.loss(extract_feat(inputs), '
                'data_samples), e.g. SMOKEMono3D or FCOSMono3D')
        from mmdet.models.detectors import SingleStageDetector
        own_loss = getattr(type(detector), 'loss', None)
        if isinstance(detector, SingleStageDetector) and \
                own_loss is not SingleStageDetector.loss:
            warnings.warn(
                f'{name} overrides loss(); DepthDiscriminativeDetector '
                'computes the baseline losses as bbox_head.loss('
                'extract_feat(inputs), data_samples), bypassing that '
                'override')

    def _complete_head_cfg(self, cfg: dict) -> dict:
        cfg = copy.deepcopy(cfg)
        if 'in_channels' not in cfg:
            in_channels = getattr(self.detector.bbox_head, 'in_channels',
                                  None)
            if not isinstance(in_channels, int):
                raise ValueError(
                    'depth_map_head.in_channels is not set and the wrapped '
                    'bbox_head has no int in_channels to default to; set '
                    'depth_map_head.in_channels to the channel count of '
                    f'feature level {self.feature_level}')
            cfg['in_channels'] = in_channels
        cfg.setdefault('min_depth', self.min_depth)
        cfg.setdefault('max_depth', self.max_depth)
        return cfg

    @property
    def with_auxiliary(self) -> bool:
        """Whether any auxiliary loss is configured."""
        return any(m is not None
                   for m in (self.qi_loss, self.metric_loss,
                             self.depth_map_head, self.dense_metric_loss))

    # ------------------------------------------------------------------
    # forward modes
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Union[dict, List[dict]],
                data_samples: OptSampleList = None,
                mode: str = 'tensor',
                **kwargs) -> ForwardResults:
        """``loss``: baseline plus auxiliary losses; every other mode is
        forwarded to the wrapped detector unchanged."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, **kwargs)
        return self.detector(inputs, data_samples, mode=mode, **kwargs)

    def extract_feat(self, batch_inputs_dict: dict):
        """The wrapped detector's features."""
        return self.detector.extract_feat(batch_inputs_dict)

    def predict(self, batch_inputs_dict: dict,
                batch_data_samples: SampleList, **kwargs) -> SampleList:
        """The wrapped detector's predictions."""
        return self.detector.predict(batch_inputs_dict, batch_data_samples,
                                     **kwargs)

    def _forward(self, batch_inputs_dict: dict,
                 batch_data_samples: OptSampleList = None, **kwargs):
        """The wrapped detector's raw head outputs."""
        return self.detector._forward(batch_inputs_dict, batch_data_samples,
                                      **kwargs)

    def loss(self, batch_inputs_dict: dict,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Baseline losses (unchanged keys and values) plus DDML's.

        The route of a batch: :meth:`extract_feat` once, then
        :meth:`loss_by_feat` (the wrapped head's losses, then
        :meth:`aux_feature_map` and :meth:`loss_auxiliary`).

        Args:
            batch_inputs_dict (dict): Preprocessed inputs with ``imgs``,
                shape (B, 3, H, W).
            batch_data_samples (list[:obj:`Det3DDataSample`]): Ground truth
                with ``gt_instances_3d`` (``centers_2d`` in input pixels,
                ``depths``, ``labels_3d``, ``bboxes_3d``) and
                ``gt_instances.bboxes`` (input pixels, xyxy).

        Returns:
            dict[str, Tensor]: The wrapped head's losses and those of
            ``loss_qi``, ``loss_metric``, ``loss_obj_depth``,
            ``loss_dense_metric`` that are configured.
        """
        feats = self.extract_feat(batch_inputs_dict)
        return self.loss_by_feat(feats, batch_inputs_dict, batch_data_samples)

    def loss_by_feat(self, feats: Union[Tensor, Sequence[Tensor]],
                     batch_inputs_dict: dict,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """All losses from the features of :meth:`extract_feat`.

        Args:
            feats (Tensor | Sequence[Tensor]): ``extract_feat``'s output.
            batch_inputs_dict (dict): The inputs ``feats`` come from (their
                ``imgs`` give the stride of the auxiliary feature map).
            batch_data_samples (list[:obj:`Det3DDataSample`]): Ground truth.

        Returns:
            dict[str, Tensor]: As :meth:`loss`.

        Raises:
            KeyError: When an auxiliary loss key is one of the wrapped
                head's.
        """
        losses = self.detector.bbox_head.loss(feats, batch_data_samples)
        if not self.with_auxiliary:
            return losses
        feat, stride = self.aux_feature_map(feats, batch_inputs_dict)
        aux_losses = self.loss_auxiliary(feat, stride, batch_data_samples)
        clash = set(aux_losses) & set(losses)
        if clash:
            raise KeyError(f'the wrapped head already returns {sorted(clash)}'
                           '; DDML losses would overwrite them')
        losses.update(aux_losses)
        return losses

    # ------------------------------------------------------------------
    # the steps of the auxiliary losses
    # ------------------------------------------------------------------
    def select_feature(self, feats: Union[Tensor, Sequence[Tensor]]
                       ) -> Tensor:
        """The map at ``feature_level`` of ``extract_feat``'s output.

        Args:
            feats (Tensor | Sequence[Tensor]): ``extract_feat``'s output.

        Returns:
            Tensor: The map, shape (B, C, H, W) (the same tensor, so
            gradients taken with respect to it are those of the losses).
        """
        levels = (feats, ) if isinstance(feats, Tensor) else tuple(feats)
        num = len(levels)
        if not -num <= self.feature_level < num:
            raise IndexError(
                f'feature_level={self.feature_level} does not exist: '
                f'{type(self.detector).__name__}.extract_feat returned {num} '
                f'feature map(s); set feature_level to 0..{num - 1}')
        feat = levels[self.feature_level]
        if not isinstance(feat, Tensor) or feat.dim() != 4:
            raise TypeError(f'feature level {self.feature_level} is not a '
                            '(B, C, H, W) tensor')
        return feat

    def aux_feature_map(self, feats: Union[Tensor, Sequence[Tensor]],
                        batch_inputs_dict: dict
                        ) -> Tuple[Tensor, Tuple[float, float]]:
        """The feature map the auxiliary parts read, and its stride.

        Args:
            feats (Tensor | Sequence[Tensor]): ``extract_feat``'s output.
            batch_inputs_dict (dict): The inputs, with ``imgs`` of shape
                (B, 3, H, W) (padded batch input).

        Returns:
            tuple[Tensor, tuple[float, float]]: The map at
            ``feature_level`` (B, C, h, w) and its stride (y, x) in input
            pixels per cell.
        """
        feat = self.select_feature(feats)
        imgs = batch_inputs_dict.get('imgs', None) \
            if isinstance(batch_inputs_dict, dict) else None
        if imgs is None:
            raise KeyError("batch_inputs_dict needs 'imgs' (B, 3, H, W) to "
                           'infer the stride of the feature map')
        return feat, infer_feature_stride(imgs.shape[-2:], feat.shape[-2:])

    def object_descriptors(self, feat: Tensor, stride: Tuple[float, float],
                           batch_data_samples: SampleList
                           ) -> ObjectDescriptors:
        """This process's object descriptors of a batch (float32).

        One descriptor per ground-truth object whose projected centre is on
        the map, whose depth is in ``[min_depth, max_depth]`` and whose
        class is not ignored: the ``descriptor_pool``-pooled map at its
        centre (see :func:`ddml.models.descriptors.
        collect_object_descriptors`).

        Args:
            feat (Tensor): Feature map, shape (B, C, H, W).
            stride (tuple[float, float]): Its stride (y, x) in input pixels.
            batch_data_samples (list[:obj:`Det3DDataSample`]): Ground truth.

        Returns:
            :obj:`ObjectDescriptors`: Descriptors (N, C) float32 on the
            graph of ``feat``, depths (N, ), image ids and labels.
        """
        with torch.autocast(device_type=feat.device.type, enabled=False):
            return collect_object_descriptors(
                feat.float(), [s.gt_instances_3d for s in batch_data_samples],
                stride, self.descriptor_pool, self.min_depth, self.max_depth,
                self.ignore_classes)

    def depth_map_targets(self, feat: Tensor, stride: Tuple[float, float],
                          batch_data_samples: SampleList) -> Tensor:
        """The object depth map of the objects in ``[min_depth,
        max_depth]`` (the depths of ``dense_metric_loss``).

        The depth map head paints its own targets within its own depth
        range (:meth:`ObjectDepthMapHead.get_targets`).

        Args:
            feat (Tensor): Feature map, shape (B, C, H, W).
            stride (tuple[float, float]): Its stride (y, x) in input pixels.
            batch_data_samples (list[:obj:`Det3DDataSample`]): Ground truth.

        Returns:
            Tensor: Depths in metres, shape (B, H, W), 0 on background.
        """
        return paint_batch_depth_targets(batch_data_samples, feat.shape[-2:],
                                         stride, self.min_depth,
                                         self.max_depth, feat.device)

    def affine_augmented(self, batch_data_samples: SampleList
                         ) -> List[bool]:
        """Which images were randomly shifted or scaled.

        Args:
            batch_data_samples (list[:obj:`Det3DDataSample`]): With the
                ``affine_aug`` metainfo of mmdet3d's ``RandomShiftScale`` /
                ``AffineResize``.

        Returns:
            list[bool]: One mark per sample.

        Raises:
            KeyError: When a sample has no ``affine_aug`` metainfo.
        """
        marks = []
        for i, data_sample in enumerate(batch_data_samples):
            mark = data_sample.metainfo.get(AFFINE_AUG_KEY, None)
            if mark is None:
                raise KeyError(
                    'model.skip_aux_on_affine_aug=True needs the '
                    f"'{AFFINE_AUG_KEY}' metainfo of every sample, but "
                    f'sample {i} of the batch has none. mmdet3d\'s '
                    'RandomShiftScale and AffineResize write it and '
                    'Pack3DDetInputs packs it with its default meta_keys: '
                    'add AffineResize to the training pipeline, list '
                    f"'{AFFINE_AUG_KEY}' in Pack3DDetInputs.meta_keys if "
                    'the config sets them, or set '
                    'model.skip_aux_on_affine_aug=False')
            marks.append(bool(mark))
        return marks

    def kept_objects(self, data_sample: Det3DDataSample,
                     index: int = 0) -> Tensor:
        """Which objects of a sample are at ``min_difficulty`` or easier.

        Args:
            data_sample (:obj:`Det3DDataSample`): With
                ``gt_instances_3d.difficulty``, shape (N, ) (0 easy,
                1 moderate, 2 hard, -1 none).
            index (int): Position of the sample in its batch (for errors).

        Returns:
            Tensor: Bool mask on the CPU, shape (N, ); all True when
            ``min_difficulty`` is None.

        Raises:
            KeyError: When the sample has no ``difficulty``.
            ValueError: When a code is not -1, 0, 1 or 2.
        """
        gt_3d = data_sample.gt_instances_3d
        if self.min_difficulty is None:
            return torch.ones(len(gt_3d), dtype=torch.bool)
        difficulty = gt_3d.get('difficulty', None)
        if difficulty is None:
            raise KeyError(
                f'model.min_difficulty={self.min_difficulty!r} needs the '
                'KITTI difficulty of every object in '
                'gt_instances_3d.difficulty (0 easy, 1 moderate, 2 hard, -1 '
                f'none, as in mmdet3d\'s KITTI infos), but sample {index} '
                'of the batch has none; mmdet3d\'s mono3d pipeline does not '
                'load it. Use info files from ddml\'s converter '
                '(tools/create_data.py) and the transforms of '
                'ddml.datasets.transforms (LoadObjectDifficulty, '
                'AffineResizeKeepInstanceKeys, Pack3DDetInputsWithDifficulty'
                ', as the ddml-release_* configs do), or set '
                'model.min_difficulty=None')
        difficulty = torch.as_tensor(difficulty).reshape(-1).cpu()
        known = (difficulty == -1) | (difficulty == 0) | \
            (difficulty == 1) | (difficulty == 2)
        if not bool(known.all()):
            raise ValueError(
                f'gt_instances_3d.difficulty of sample {index} has codes '
                f'{sorted(set(difficulty[~known].tolist()))}; expected -1 '
                '(none), 0 (easy), 1 (moderate) or 2 (hard)')
        level = KITTI_DIFFICULTIES.index(self.min_difficulty)
        return (difficulty >= 0) & (difficulty <= level)

    def auxiliary_ground_truth(self, batch_data_samples: SampleList
                               ) -> Tuple[SampleList, List[bool]]:
        """The ground truth the auxiliary losses read, after the release's
        sample rules (``skip_aux_on_affine_aug``, ``min_difficulty``).

        Args:
            batch_data_samples (list[:obj:`Det3DDataSample`]): Ground truth.

        Returns:
            tuple[list[:obj:`Det3DDataSample`], list[bool]]: The samples
            (the same objects when both rules are off; otherwise copies
            holding the metainfo and the kept objects of ``gt_instances_3d``
            and of the index-aligned ``gt_instances``, none for a skipped
            image) and, per image, whether the auxiliary losses use it.
        """
        used = [True] * len(batch_data_samples)
        if not self.skip_aux_on_affine_aug and self.min_difficulty is None:
            return list(batch_data_samples), used
        if self.skip_aux_on_affine_aug:
            used = [not aug
                    for aug in self.affine_augmented(batch_data_samples)]
        samples = []
        for i, data_sample in enumerate(batch_data_samples):
            keep = self.kept_objects(data_sample, i)
            if not used[i]:
                keep = torch.zeros_like(keep)
            samples.append(_select_objects(data_sample, keep))
        return samples, used

    def loss_auxiliary(self, feat: Tensor, stride: Tuple[float, float],
                       batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """DDML's losses on one feature map (computed in float32).

        ``loss_qi`` and ``loss_metric`` compare the pairs of
        :meth:`object_descriptors` (gathered over processes when
        configured); ``loss_obj_depth`` is the depth map head's
        :meth:`ObjectDepthMapHead.loss`; ``loss_dense_metric`` compares
        the cells of ``feat`` paired on :meth:`depth_map_targets`. All of
        them read the ground truth of :meth:`auxiliary_ground_truth`; the
        dense metric loss reads only the maps of the images it uses.

        Args:
            feat (Tensor): Feature map, shape (B, C, H, W).
            stride (tuple[float, float]): Its stride (y, x) in input pixels.
            batch_data_samples (list[:obj:`Det3DDataSample`]): Ground truth.

        Returns:
            dict[str, Tensor]: One finite scalar per configured loss, on the
            graph of ``feat`` (and of the depth head) even when there is
            nothing to compare.
        """
        losses: Dict[str, Tensor] = {}
        with torch.autocast(device_type=feat.device.type, enabled=False):
            zero = feat.float().sum() * 0. + 0.  # attached; +0 avoids -0.0
        num_images = len(batch_data_samples)
        batch_data_samples, used = self.auxiliary_ground_truth(
            batch_data_samples)
        if self.qi_loss is not None or self.metric_loss is not None:
            objects = self.object_descriptors(feat, stride,
                                              batch_data_samples)
            losses.update(
                self._loss_object_pairs(objects, num_images, zero))
        if self.depth_map_head is not None:
            # The head's convs run under the ambient autocast.
            losses.update(
                self.depth_map_head.loss(feat, batch_data_samples, stride))
        if self.dense_metric_loss is not None:
            losses['loss_dense_metric'] = self._loss_dense_metric(
                feat, stride, batch_data_samples, used, zero)
        return losses

    def _loss_dense_metric(self, feat: Tensor, stride: Tuple[float, float],
                           batch_data_samples: SampleList, used: List[bool],
                           zero: Tensor) -> Tensor:
        """``loss_dense_metric`` on the maps of the images in ``used``."""
        targets = self.depth_map_targets(feat, stride, batch_data_samples)
        if not all(used):
            if not any(used):
                return zero
            index = torch.tensor([i for i, u in enumerate(used) if u],
                                 device=feat.device)
            feat, targets = feat[index], targets[index]
        with torch.autocast(device_type=feat.device.type, enabled=False):
            loss = self.dense_metric_loss.forward_shifted_pairs(
                feat.float(), targets, **self.dense_pair_cfg)
        return self._finite(loss, zero, 'loss_dense_metric')

    def _loss_object_pairs(self, objects: ObjectDescriptors,
                           num_images: int,
                           zero: Tensor) -> Dict[str, Tensor]:
        """``loss_qi`` and ``loss_metric`` over pairs of descriptors."""
        grad_scale = 1
        if self.gather_across_processes and self.pair_scope == 'batch':
            objects = gather_object_descriptors(objects, num_images)
            # Every process computes the same global loss but
            # back-propagates only through its own descriptors, and DDP
            # then averages the gradients over processes: scale by the
            # world size so the result is the gradient of one process
            # holding the whole batch.
            grad_scale = get_world_size()
        losses = {}
        with torch.autocast(device_type=zero.device.type, enabled=False):
            if self.qi_loss is not None:
                losses['loss_qi'] = _ScaleGrad.apply(
                    self._pairwise_loss(self.qi_loss, objects, zero,
                                        'loss_qi'), grad_scale)
            if self.metric_loss is not None:
                losses['loss_metric'] = _ScaleGrad.apply(
                    self._pairwise_loss(self.metric_loss.forward_all_pairs,
                                        objects, zero, 'loss_metric'),
                    grad_scale)
        return losses

    def _pairwise_loss(self, loss_fn: Callable, objects: ObjectDescriptors,
                       zero: Tensor, name: str) -> Tensor:
        if self.pair_scope == 'batch':
            if objects.num_objects < 2:
                return zero
            return self._finite(
                loss_fn(objects.descriptors, objects.depths), zero, name)
        per_image = []
        for img_id in torch.unique(objects.image_ids).tolist():
            mask = objects.image_ids == img_id
            if int(mask.sum()) >= 2:
                per_image.append(
                    loss_fn(objects.descriptors[mask], objects.depths[mask]))
        if not per_image:
            return zero
        return self._finite(torch.stack(per_image).mean(), zero, name)

    @staticmethod
    def _finite(loss: Tensor, zero: Tensor, name: str) -> Tensor:
        """Replace a non-finite auxiliary loss by an attached zero."""
        if bool(torch.isfinite(loss).all()):
            return loss.reshape(())
        print_log(f'{name} is not finite ({loss.detach().cpu()}); using 0 '
                  'for this iteration', logger='current',
                  level=logging.WARNING)
        return zero


def _select_objects(data_sample: Det3DDataSample,
                    keep: Tensor) -> Det3DDataSample:
    """A sample with the metainfo and the objects ``keep`` (bool, (N, ))
    of ``data_sample``: of ``gt_instances_3d`` and, when index-aligned with
    it, of ``gt_instances``; otherwise the copy has no 2D boxes, so that
    the depth map is painted from the projected 3D boxes as before."""
    gt_3d = data_sample.gt_instances_3d
    selected = Det3DDataSample(metainfo=data_sample.metainfo)
    selected.gt_instances_3d = gt_3d[keep]
    gt_2d = data_sample.get('gt_instances', None)
    if gt_2d is not None:
        selected.gt_instances = gt_2d[keep] if len(gt_2d) == len(gt_3d) \
            else InstanceData(metainfo=gt_2d.metainfo)
    return selected


def export_baseline_checkpoint(checkpoint: dict,
                               prefix: str = 'detector.') -> dict:
    """Strip a wrapper checkpoint down to the plain baseline detector.

    Keeps the wrapped detector's weights (keys ``detector.*`` renamed to
    ``*``) and ``meta``; drops the auxiliary modules (depth map head,
    losses) and the optimizer, scheduler and message-hub states.

    Args:
        checkpoint (dict): As saved by mmengine (``state_dict``, ``meta``,
            ``optimizer``, ...) or a bare state dict.
        prefix (str): Prefix of the wrapped detector's keys. Defaults to
            ``'detector.'``.

    Returns:
        dict: ``{'meta': ..., 'state_dict': ...}`` that the baseline config
        loads with ``load_checkpoint(model, path, strict=True)``.
    """
    if 'state_dict' in checkpoint:
        state_dict = checkpoint['state_dict']
    else:
        state_dict = checkpoint
    keys = list(state_dict)
    if keys and all(k.startswith('module.') for k in keys):
        state_dict = OrderedDict(
            (k[len('module.'):], v) for k, v in state_dict.items())
    exported = OrderedDict((k[len(prefix):], v)
                           for k, v in state_dict.items()
                           if k.startswith(prefix))
    if not exported:
        raise ValueError(
            f'no key starts with {prefix!r}: this is not a '
            'DepthDiscriminativeDetector checkpoint (the wrapped detector '
            'is stored under `detector.`)')
    dropped = sorted({k.split('.')[0]
                      for k in state_dict if not k.startswith(prefix)})
    meta = copy.deepcopy(checkpoint.get('meta', {})) \
        if 'state_dict' in checkpoint else {}
    meta = dict(meta) if meta is not None else {}
    meta['ddml_export'] = dict(
        kept_prefix=prefix, dropped_modules=dropped,
        dropped_entries=sorted(k for k in checkpoint
                               if k not in ('meta', 'state_dict'))
        if 'state_dict' in checkpoint else [])
    return dict(meta=meta, state_dict=exported)
