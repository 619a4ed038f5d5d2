"""Waymo 3D detection metric for monocular (front-camera) detectors, without
TensorFlow or the devkit's bazel binaries.

mmdet3d 1.4's ``WaymoMetric`` writes predictions to a protobuf file and
shells out to ``compute_detection_metrics_main`` /
``compute_detection_let_metrics_main``, binaries current devkit releases no
longer ship.  :class:`WaymoMono3DMetric` computes the same figures (3D AP /
APH at LEVEL_1 / LEVEL_2, per range bin, and the camera-only LET-3D-AP /
APL / APH) in numpy (:mod:`ddml.evaluation.waymo_ap`), from the predictions
and the ground truth in mmdet3d's Waymo info files, so it runs in any
environment that runs mmdet3d.  ``tests/test_evaluation/test_waymo_oracle.py``
checks the core against Waymo's own TensorFlow op, and
``test_waymo_metric_e2e_oracle.py`` the whole metric (camera boxes and infos
in, figures out) against the op fed boxes converted independently.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger, print_log

from mmdet3d.registry import METRICS
from mmdet3d.structures import (Box3DMode, CameraInstance3DBoxes,
                                LiDARInstance3DBoxes)
from ..structures import project_boxes_to_image
from .waymo_ap import (LEVEL_1, RANGE_BINS, TYPE_CYCLIST, TYPE_NAMES,
                       TYPE_PEDESTRIAN, TYPE_SIGN, TYPE_VEHICLE, LETConfig,
                       WaymoDetectionEvaluator, WaymoFrame,
                       difficulty_from_num_points, waymo_3d_config,
                       waymo_let_config)

__all__ = ['WaymoMono3DMetric', 'CLASS_TO_WAYMO_TYPE', 'intrinsics_image_shape']

#: mmdet3d / KITTI-style class names -> Waymo label types.
CLASS_TO_WAYMO_TYPE = {
    'Car': TYPE_VEHICLE,
    'Vehicle': TYPE_VEHICLE,
    'Pedestrian': TYPE_PEDESTRIAN,
    'Sign': TYPE_SIGN,
    'Cyclist': TYPE_CYCLIST,
}
_RANGE_NAMES = ('0-30m', '30-50m', '50m-inf')
assert len(_RANGE_NAMES) == len(RANGE_BINS)


def _get(sample, key, default=None):
    """Reads a key from a data-sample dict or a ``Det3DDataSample``."""
    if isinstance(sample, dict):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _frame_key(obj) -> Tuple[str, int]:
    """(context_name, timestamp) of an info dict or a data sample."""
    return (str(_get(obj, 'context_name')), int(_get(obj, 'timestamp')))


def _lidar_to_waymo(boxes: LiDARInstance3DBoxes) -> np.ndarray:
    """mmdet3d LiDAR boxes (bottom centre) -> Waymo (gravity centre).

    Args:
        boxes (LiDARInstance3DBoxes): N boxes ``(x, y, z_bottom, l, w, h,
            yaw)`` in mmdet3d's Waymo LiDAR frame (= Waymo's vehicle frame).

    Returns:
        np.ndarray: (N, 7) float64 ``(cx, cy, cz, l, w, h, heading)``.
    """
    arr = boxes.tensor[:, :7].detach().cpu().double().numpy().copy()
    arr[:, 2] += 0.5 * arr[:, 5]
    return arr


def _cam_to_waymo(boxes: CameraInstance3DBoxes,
                  lidar2cam: np.ndarray) -> np.ndarray:
    """Camera boxes -> Waymo vehicle-frame boxes, as mmdet3d's WaymoMetric.

    Args:
        boxes (CameraInstance3DBoxes): N boxes in the camera frame.
        lidar2cam (np.ndarray): (4, 4) LiDAR(=vehicle)-to-camera transform.

    Returns:
        np.ndarray: (N, 7) Waymo boxes (gravity centre).
    """
    cam2lidar = np.linalg.inv(np.asarray(lidar2cam, dtype=np.float64))
    lidar = boxes.convert_to(
        Box3DMode.LIDAR,
        boxes.tensor.new_tensor(cam2lidar),
        correct_yaw=True)
    return _lidar_to_waymo(lidar)


def intrinsics_image_shape(sample) -> Optional[Sequence[int]]:
    """The (height, width) of the image a sample's ``cam2img`` describes.

    mmdet3d's ``Resize3D`` scales ``cam2img`` with the image, so it matches
    ``img_shape``; ``AffineResize`` (SMOKE, MonoDLE) leaves ``cam2img`` as
    it is and records ``trans_mat``, so there the intrinsics describe the
    original image, ``ori_shape``.

    Args:
        sample (dict | Det3DDataSample): A data sample's metainfo holder.

    Returns:
        tuple | None: ``ori_shape`` after an affine resize, else
        ``img_shape`` (None when the sample has neither).
    """
    if _get(sample, 'trans_mat') is not None:
        shape = _get(sample, 'ori_shape')
        if shape is not None:
            return shape
    return _get(sample, 'img_shape')


def _in_image(boxes: CameraInstance3DBoxes, cam2img: np.ndarray,
              img_shape: Sequence[int]) -> np.ndarray:
    """Whether the projected corners' 2D box intersects the image.

    The rule of mmdet3d's ``WaymoMetric.process`` for camera predictions.

    Args:
        boxes (CameraInstance3DBoxes): N boxes.
        cam2img (np.ndarray): (3, 3), (3, 4) or (4, 4) intrinsics.
        img_shape (Sequence[int]): (height, width) the intrinsics refer to.

    Returns:
        np.ndarray: (N,) bool.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    box2d = project_boxes_to_image(boxes, cam2img, behind='keep')
    h, w = float(img_shape[0]), float(img_shape[1])
    ok = (box2d[:, 0] < w) & (box2d[:, 1] < h) & (box2d[:, 2] > 0) & \
        (box2d[:, 3] > 0)
    return ok.cpu().numpy()


def _summarise(results: dict, levels: Sequence[int], names: Sequence[str],
               eval_types: Sequence[int], prefix: str) -> Dict[str, float]:
    """Named figures of one evaluation (3D or LET) for the log.

    Args:
        results (dict): ``compute()`` of an evaluator, keyed by
            ``('OBJECT_TYPE', type, None, level)`` and
            ``('RANGE', type, range index, level)``.
        levels (Sequence[int]): Difficulty levels to report.
        names (Sequence[str]): Figures to report (``AP``, ``APH``, ``APL``).
        eval_types (Sequence[int]): Object types with ground truth or
            predictions.
        prefix (str): ``''`` for 3D, ``'LET-'`` for LET figures.

    Returns:
        dict: ``{Type}/LEVEL_{l}/{prefix}{name}``, the per-range figures
        ``{Type}/LEVEL_{l}/Range_{r}/{prefix}{name}`` and the means over types
        ``Overall/LEVEL_{l}/{prefix}m{name}``.
    """
    out: Dict[str, float] = {}
    for lv in levels:
        for name in names:
            vals = []
            for t in eval_types:
                v = results[('OBJECT_TYPE', t, None, lv)][name]
                out[f'{TYPE_NAMES[t]}/LEVEL_{lv}/{prefix}{name}'] = v
                vals.append(v)
                for r, rname in enumerate(_RANGE_NAMES):
                    out[f'{TYPE_NAMES[t]}/LEVEL_{lv}/Range_{rname}/'
                        f'{prefix}{name}'] = results[('RANGE', t, r, lv)][name]
            out[f'Overall/LEVEL_{lv}/{prefix}m{name}'] = float(np.mean(vals))
    return out


@METRICS.register_module()
class WaymoMono3DMetric(BaseMetric):
    """Waymo Open Dataset 3D detection metrics in numpy (no TF, no binary).

    Reports, per class (Vehicle, Pedestrian, Cyclist; Sign if the dataset
    has it) and overall (mean over those classes):

    - ``{Class}/LEVEL_{1,2}/AP`` and ``/APH`` - 3D AP and heading-weighted AP
      with IoU 0.7 (vehicle) / 0.5 (others), Hungarian matching, Waymo's
      score cutoffs and P/R integration; ``Overall/LEVEL_k/mAP``, ``mAPH``;
    - ``{Class}/LEVEL_k/Range_{0-30m,30-50m,50m-inf}/AP`` and ``/APH``;
    - ``{Class}/LEVEL_2/LET-AP``, ``LET-APL``, ``LET-APH`` and
      ``Overall/LEVEL_2/LET-mAP``, ``LET-mAPL``, ``LET-mAPH`` - the
      camera-only challenge's longitudinal-error-tolerant metrics (IoU 0.5 /
      0.3, tolerance 10 % of the range, >= 0.5 m, sensor at (1.43, 0, 2.18)
      in the vehicle frame);

    all prefixed with ``Waymo/`` (``default_prefix``).

    Ground truth comes from the info file (``ann_file``), frame by frame
    through the ``context_name`` and ``timestamp`` meta keys (which
    ``Pack3DDetInputs`` must pack; ``sample_idx`` is not usable, mmengine
    replaces it with the dataset index); only frames with a prediction are
    evaluated (so ``load_interval`` and partial runs work).  Difficulty is
    Waymo's: ground truths without LiDAR points are dropped, with <= 5
    points they are LEVEL_2, else LEVEL_1.

    Args:
        ann_file (str): mmdet3d v2 Waymo info file (``waymo_infos_val.pkl``).
        load_type (str): ``'fov_image_based'`` (one camera per frame, mono3d)
            or ``'frame_based'`` (LiDAR-frame predictions, all GT).
            Defaults to ``'fov_image_based'``.
        cam_key (str): Camera of the ``fov_image_based`` mode. Defaults to
            ``'CAM_FRONT'``.
        gt_source (str): Where the ground truth comes from:

            - ``'cam_instances'`` (default for ``fov_image_based``): the
              camera's ``cam_instances`` (what mono3d detectors are trained
              on), converted to the vehicle frame with ``lidar2cam``; their
              ``num_lidar_pts`` is looked up in ``instances`` (the info
              converter derives ``cam_instances`` from them).
            - ``'instances'``: the frame's ``instances`` (LiDAR boxes), in
              ``fov_image_based`` mode only those visible in the camera.
            - ``'cam_sync_instances'``: the camera-synchronised boxes (the
              ground truth of Waymo's camera-only challenge), filtered like
              ``'instances'``.
        info_classes (Sequence[str]): Class names the info file's
            ``bbox_label_3d`` index. Defaults to mmdet3d's Waymo converter
            order ``('Car', 'Pedestrian', 'Cyclist')``.
        metrics (Sequence[str]): ``'3d'`` (AP/APH) and/or ``'let'``.
            Defaults to both.
        let_levels (Sequence[int]): Difficulty levels of the LET metrics.
            Defaults to ``(2,)`` as in the challenge.
        let_config (dict, optional): Overrides of :class:`LETConfig`.
        filter_preds_outside_image (bool): Drop camera predictions whose
            projection misses the image, as mmdet3d's WaymoMetric does.
            Defaults to True.
        unknown_difficulty (int): Level of a ``cam_instances`` box whose
            point count cannot be found in ``instances`` (inconsistent
            infos). Defaults to 1 (counted at both levels); a warning says
            how many.
        match_tol (float): Max distance (m) between a converted
            ``cam_instances`` box and its ``instances`` box. Defaults to 0.1.
        backend_args (dict, optional): File backend of ``ann_file``.
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix. Defaults to ``'Waymo'``.
    """
    default_prefix = 'Waymo'

    def __init__(self,
                 ann_file: str,
                 load_type: str = 'fov_image_based',
                 cam_key: str = 'CAM_FRONT',
                 gt_source: Optional[str] = None,
                 info_classes: Sequence[str] = ('Car', 'Pedestrian',
                                                'Cyclist'),
                 metrics: Union[str, Sequence[str]] = ('3d', 'let'),
                 let_levels: Sequence[int] = (2, ),
                 let_config: Optional[dict] = None,
                 filter_preds_outside_image: bool = True,
                 unknown_difficulty: int = LEVEL_1,
                 match_tol: float = 0.1,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        if load_type not in ('fov_image_based', 'frame_based'):
            raise ValueError(
                f"load_type must be 'fov_image_based' or 'frame_based', got "
                f"{load_type!r} ('mv_image_based' needs a multi-view merge "
                'that this metric does not do)')
        if gt_source is None:
            gt_source = ('cam_instances'
                         if load_type == 'fov_image_based' else 'instances')
        if gt_source not in ('cam_instances', 'instances',
                             'cam_sync_instances'):
            raise ValueError(f'unknown gt_source {gt_source!r}')
        if gt_source == 'cam_instances' and load_type != 'fov_image_based':
            raise ValueError("gt_source='cam_instances' needs "
                             "load_type='fov_image_based'")
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        bad = [m for m in metrics if m not in ('3d', 'let')]
        if bad or not metrics:
            raise ValueError(f"metrics must be among '3d', 'let', got "
                             f'{metrics}')
        unknown = [c for c in info_classes if c not in CLASS_TO_WAYMO_TYPE]
        if unknown:
            raise ValueError(f'info_classes {unknown} have no Waymo type; '
                             f'known: {sorted(CLASS_TO_WAYMO_TYPE)}')
        if unknown_difficulty not in (1, 2):
            raise ValueError('unknown_difficulty must be 1 or 2')
        self.ann_file = ann_file
        self.load_type = load_type
        self.cam_key = cam_key
        self.gt_source = gt_source
        self.info_classes = tuple(info_classes)
        self.metrics = metrics
        self.let_levels = tuple(let_levels)
        self.let = LETConfig(**(let_config or {}))
        self.filter_preds_outside_image = filter_preds_outside_image
        self.unknown_difficulty = unknown_difficulty
        self.match_tol = match_tol
        self.backend_args = backend_args
        self._infos: Optional[Dict[int, dict]] = None

    # ------------------------------------------------------------------ #
    def _load_infos(self) -> Dict[int, dict]:
        if self._infos is None:
            data = load(self.ann_file, backend_args=self.backend_args)
            if not isinstance(data, dict) or 'data_list' not in data:
                raise ValueError(f'{self.ann_file} is not an mmdet3d v2 info '
                                 "file (a dict with 'data_list')")
            self._infos = {}
            for info in data['data_list']:
                if 'context_name' not in info or 'timestamp' not in info:
                    raise ValueError(
                        f'{self.ann_file}: infos need context_name and '
                        'timestamp (mmdet3d >= 1.1 Waymo infos have them)')
                self._infos[_frame_key(info)] = info
        return self._infos

    def _class_types(self) -> np.ndarray:
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            raise ValueError('WaymoMono3DMetric needs dataset_meta["classes"]'
                             ' (set by the runner from the dataset)')
        return np.array([CLASS_TO_WAYMO_TYPE.get(c, 0) for c in classes])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Converts each prediction to Waymo boxes in the vehicle frame.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Model outputs with
                ``pred_instances_3d`` (``bboxes_3d``: Camera- or
                LiDARInstance3DBoxes, ``scores_3d``, ``labels_3d``) and the
                meta keys ``context_name`` and ``timestamp`` (required),
                ``cam2img`` and the shape of the image it describes
                (optional, used together for the image filter; see
                :func:`intrinsics_image_shape`), ``lidar2cam`` (optional; else from the info).
        """
        for sample in data_samples:
            pred = _get(sample, 'pred_instances_3d')
            if pred is None:
                raise KeyError('data sample has no pred_instances_3d')
            if (_get(sample, 'context_name') is None
                    or _get(sample, 'timestamp') is None):
                raise KeyError(
                    "data sample lacks the 'context_name' / 'timestamp' meta "
                    'keys that identify the Waymo frame; add them to '
                    "Pack3DDetInputs(meta_keys=...) ('sample_idx' is "
                    "overwritten by mmengine's BaseDataset with the index)")
            key = _frame_key(sample)
            boxes = _get(pred, 'bboxes_3d')
            scores = torch.as_tensor(_get(pred, 'scores_3d')).detach().cpu()
            labels = torch.as_tensor(_get(pred, 'labels_3d')).detach().cpu()
            if isinstance(boxes, CameraInstance3DBoxes):
                boxes = boxes.to('cpu')
                info = self._load_infos().get(key)
                lidar2cam = _get(sample, 'lidar2cam')
                cam2img = _get(sample, 'cam2img')
                img_shape = intrinsics_image_shape(sample)
                if info is not None:
                    img_info = info['images'][self.cam_key]
                    if lidar2cam is None:
                        lidar2cam = img_info['lidar2cam']
                    if cam2img is None or img_shape is None:
                        cam2img = img_info['cam2img']
                        img_shape = (img_info['height'], img_info['width'])
                if lidar2cam is None:
                    raise KeyError(
                        f'no lidar2cam for frame {key}: neither in '
                        'the data sample nor in the info file')
                keep = np.ones(len(boxes), dtype=bool)
                if self.filter_preds_outside_image and cam2img is not None:
                    keep = _in_image(boxes, cam2img, img_shape)
                keep_t = torch.from_numpy(keep)
                wboxes = _cam_to_waymo(boxes[keep_t], lidar2cam)
                scores, labels = scores[keep_t], labels[keep_t]
            elif isinstance(boxes, LiDARInstance3DBoxes):
                wboxes = _lidar_to_waymo(boxes.to('cpu'))
            else:
                raise TypeError('bboxes_3d must be CameraInstance3DBoxes or '
                                f'LiDARInstance3DBoxes, got {type(boxes)}')
            self.results.append(
                dict(
                    frame=key,
                    boxes=wboxes.astype(np.float32),
                    scores=scores.float().numpy().reshape(-1),
                    labels=labels.long().numpy().reshape(-1)))

    # ------------------------------------------------------------------ #
    def _info_types(self, instances: List[dict]) -> np.ndarray:
        out = []
        for inst in instances:
            lab = int(inst.get('bbox_label_3d', inst.get('bbox_label', -1)))
            out.append(CLASS_TO_WAYMO_TYPE[self.info_classes[lab]]
                       if 0 <= lab < len(self.info_classes) else 0)
        return np.array(out, dtype=np.int64)

    def _gt_frame(self, info: dict) -> Tuple[np.ndarray, np.ndarray,
                                             np.ndarray, int]:
        """Ground-truth boxes, types and num points of one frame.

        Returns:
            tuple: (M, 7) Waymo boxes, (M,) types (0 = not evaluated), (M,)
            LiDAR point counts (-1 = unknown), number of unknown counts.
        """
        empty = (np.zeros((0, 7)), np.zeros(0, np.int64),
                 np.zeros(0, np.int64), 0)
        if self.gt_source == 'cam_instances':
            insts = info.get('cam_instances', {}).get(self.cam_key, [])
            if not insts:
                return empty
            lidar2cam = info['images'][self.cam_key]['lidar2cam']
            cam = CameraInstance3DBoxes(
                torch.tensor([i['bbox_3d'] for i in insts],
                             dtype=torch.float64).reshape(-1, 7))
            boxes = _cam_to_waymo(cam, lidar2cam)
            types = self._info_types(insts)
            pts = np.array([i.get('num_lidar_pts', -1) for i in insts],
                           dtype=np.int64)
            ref = info.get('instances', [])
            if (pts < 0).any() and ref:
                ref_boxes = _lidar_to_waymo(
                    LiDARInstance3DBoxes(
                        torch.tensor([i['bbox_3d'] for i in ref],
                                     dtype=torch.float64).reshape(-1, 7)))
                ref_types = self._info_types(ref)
                ref_pts = np.array(
                    [i.get('num_lidar_pts', -1) for i in ref], np.int64)
                dist = np.linalg.norm(
                    boxes[:, None, :3] - ref_boxes[None, :, :3], axis=-1)
                dist[types[:, None] != ref_types[None, :]] = np.inf
                for k in np.flatnonzero(pts < 0):
                    j = int(np.argmin(dist[k]))
                    if dist[k, j] <= self.match_tol:
                        pts[k] = ref_pts[j]
            return boxes, types, pts, int((pts < 0).sum())

        insts = info.get(self.gt_source, [])
        if not insts:
            return empty
        lidar = LiDARInstance3DBoxes(
            torch.tensor([i['bbox_3d'] for i in insts],
                         dtype=torch.float64).reshape(-1, 7))
        boxes = _lidar_to_waymo(lidar)
        types = self._info_types(insts)
        pts = np.array([i.get('num_lidar_pts', -1) for i in insts], np.int64)
        if self.load_type == 'fov_image_based':
            img = info['images'][self.cam_key]
            cam = lidar.convert_to(
                Box3DMode.CAM,
                lidar.tensor.new_tensor(np.asarray(img['lidar2cam'])),
                correct_yaw=True)
            depth = cam.gravity_center[:, 2].numpy()
            visible = (depth > 0) & _in_image(cam, img['cam2img'],
                                              (img['height'], img['width']))
            boxes, types, pts = boxes[visible], types[visible], pts[visible]
        return boxes, types, pts, int((pts < 0).sum())

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Computes the metrics from the processed results.

        Args:
            results (List[dict]): Outputs of :meth:`process` (all ranks).

        Returns:
            Dict[str, float]: Metric name (without the ``Waymo/`` prefix) ->
            value.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        class_types = self._class_types()
        infos = self._load_infos()
        evaluators = {}
        if '3d' in self.metrics:
            evaluators['3d'] = WaymoDetectionEvaluator(waymo_3d_config())
        if 'let' in self.metrics:
            evaluators['let'] = WaymoDetectionEvaluator(
                waymo_let_config(self.let,
                                 difficulty_levels=self.let_levels))
        seen = set()
        n_unknown = 0
        n_dup = 0
        for res in results:
            idx = res['frame']
            if idx in seen:
                n_dup += 1
                continue
            seen.add(idx)
            if idx not in infos:
                raise KeyError(f'frame {idx} is not in {self.ann_file}; '
                               'is the metric pointed at the same info file '
                               'as the dataset?')
            gb, gtypes, gpts, unk = self._gt_frame(infos[idx])
            n_unknown += unk
            keep, level = difficulty_from_num_points(np.where(
                gpts < 0, 10**6, gpts))
            level = np.where(gpts < 0, self.unknown_difficulty, level)
            keep &= gtypes > 0
            labels = res['labels']
            valid = (labels >= 0) & (labels < len(class_types))
            ptypes = np.zeros(len(labels), np.int64)
            ptypes[valid] = class_types[labels[valid]]
            psel = ptypes > 0
            frame = WaymoFrame(
                pred_boxes=res['boxes'][psel],
                pred_scores=res['scores'][psel],
                pred_types=ptypes[psel],
                gt_boxes=gb[keep],
                gt_types=gtypes[keep],
                gt_difficulty=level[keep])
            for ev in evaluators.values():
                ev.add_frame(frame)
        if n_dup:
            print_log(f'WaymoMono3DMetric: {n_dup} duplicate results ignored',
                      logger=logger)
        if n_unknown:
            print_log(
                f'WaymoMono3DMetric: {n_unknown} ground truths have no LiDAR '
                f'point count (no matching entry in "instances"); counted '
                f'as LEVEL_{self.unknown_difficulty}',
                logger=logger,
                level=30)
        eval_types = [t for t in TYPE_NAMES if t in set(class_types.tolist())]
        out: Dict[str, float] = {}
        lines = []
        if '3d' in evaluators:
            out.update(_summarise(evaluators['3d'].compute(), (1, 2),
                                  ('AP', 'APH'), eval_types, ''))
        if 'let' in evaluators:
            out.update(_summarise(evaluators['let'].compute(),
                                  self.let_levels, ('AP', 'APL', 'APH'),
                                  eval_types, 'LET-'))
        for key in sorted(k for k in out if 'Range_' not in k):
            lines.append(f'  {key:<36s} {out[key]:.4f}')
        print_log(
            f'Waymo metrics over {len(seen)} frames ({self.load_type}, '
            f'ground truth from {self.gt_source}):\n' + '\n'.join(lines),
            logger=logger)
        return {k: float(v) for k, v in out.items()}
