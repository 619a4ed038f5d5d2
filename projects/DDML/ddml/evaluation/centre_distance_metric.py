"""Centre-distance AP and ranged depth error for KITTI-format mono3d.

KITTI's AP matches by 3D / BEV IoU, so at low resolution, where a one-pixel
error in the ground contact point moves a 20 m object by about a metre, it
stays near zero long after the depths have improved.  The nuScenes detection
metric (H. Caesar et al., "nuScenes: A multimodal dataset for autonomous
driving", CVPR 2020, Sec. 4.1 "Average Precision metric") matches by the
distance between box centres on the ground plane instead, at the thresholds
0.5, 1, 2 and 4 m, and does register such progress.
:class:`CentreDistanceMetric` computes that AP for KITTI-format data and
reports, beside it, the depth error of the matched objects by range.

The definitions are those of the nuScenes devkit
(``python-sdk/nuscenes/eval/detection/algo.py``: ``accumulate`` and
``calc_ap``; constants of ``configs/detection_cvpr_2019.json``:
``dist_ths = [0.5, 1.0, 2.0, 4.0]``, ``min_recall = min_precision = 0.1``);
the code here is our own:

1. Per class, the predictions of all frames are sorted by descending score
   (ties: the later prediction first, as the devkit's sort of
   ``(score, index)`` pairs reversed).
2. Greedy matching: each prediction in turn takes the nearest ground truth
   of its class and frame that is not taken yet, if that distance is
   strictly below the threshold; otherwise it is a false positive.
3. ``precision = cumTP / (cumTP + cumFP)``, ``recall = cumTP / #GT``;
   precision is linearly interpolated (``numpy.interp``, 0 beyond the
   highest recall) at the 101 recalls ``0, 0.01, ..., 1``.
4. ``AP = mean_{recall > min_recall}(max(precision - min_precision, 0))
   / (1 - min_precision)`` over the samples after index
   ``round(100 * min_recall)`` (so 90 samples, recall 0.11 ... 1.00, with
   the defaults).  A class with ground truth but no match has AP 0.

What differs from nuScenes, on purpose: the plane is the camera's x-z
plane (KITTI camera coordinates, y points down), there is no per-class
range filter, no LiDAR-point filter and no 500-boxes-per-frame cap, and a
class without any ground truth in the evaluated frames is reported as
``nan`` (the devkit returns AP 0 there) and left out of the means.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger, print_log

from mmdet3d.registry import METRICS
from mmdet3d.structures import CameraInstance3DBoxes

__all__ = [
    'CentreDistanceMetric', 'greedy_centre_match', 'centre_distance_ap'
]

#: Label order of mmdet3d's KITTI infos, used when an info file has no
#: ``metainfo['categories']`` (the list ``KittiMetric`` assumes).
_KITTI_CATEGORIES = ('Pedestrian', 'Cyclist', 'Car', 'Van', 'Truck',
                     'Person_sitting', 'Tram', 'Misc')
#: Recall samples of the nuScenes precision-recall curve (0, 0.01, ..., 1).
_NUM_RECALLS = 101


def _get(sample, key: str, default=None):
    """Reads a key from a dict or a data element (``Det3DDataSample``)."""
    if isinstance(sample, dict):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _fmt_thr(thr: float) -> str:
    """``2.0`` -> ``'2.0'``, ``0.25`` -> ``'0.25'`` (key suffixes)."""
    return f'{thr:.1f}' if float(thr * 10).is_integer() else f'{thr:g}'


def _bin_names(edges: Sequence[float]) -> List[str]:
    """Names of the range bins between ``edges``: ``'0-20m'``, ``'40m+'``."""
    names = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        names.append(f'{lo:g}m+' if math.isinf(hi) else f'{lo:g}-{hi:g}m')
    return names


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by descending index (devkit)."""
    return np.lexsort((np.arange(len(scores)), scores))[::-1]


def greedy_centre_match(pred_xz: np.ndarray, pred_scores: np.ndarray,
                        gt_xz: np.ndarray, thr: float) -> np.ndarray:
    """Greedy centre-distance matching of one frame and one class.

    The predictions are taken by descending score; each takes the nearest
    ground truth not taken yet if that distance is strictly below ``thr``
    (nuScenes' ``accumulate``).

    Args:
        pred_xz (np.ndarray): (P, 2) predicted centres on the ground plane
            (m).
        pred_scores (np.ndarray): (P,) scores.
        gt_xz (np.ndarray): (M, 2) ground-truth centres (m).
        thr (float): Distance threshold (m).

    Returns:
        np.ndarray: (P,) int64, the index of the matched ground truth of
        each prediction, -1 for a false positive.
    """
    num_pred, num_gt = len(pred_xz), len(gt_xz)
    match = np.full(num_pred, -1, dtype=np.int64)
    if num_pred == 0 or num_gt == 0:
        return match
    dist = np.linalg.norm(pred_xz[:, None, :] - gt_xz[None, :, :], axis=-1)
    # A prediction with no ground truth at all within thr is a false
    # positive whatever was taken before it, so only the others are looped.
    reachable = dist.min(axis=1) < thr
    taken = np.zeros(num_gt, dtype=bool)
    for p in _descending_order(pred_scores):
        if not reachable[p]:
            continue
        d = np.where(taken, np.inf, dist[p])
        j = int(np.argmin(d))
        if d[j] < thr:
            match[p] = j
            taken[j] = True
            if taken.all():
                break
    return match


def centre_distance_ap(scores: np.ndarray,
                       is_tp: np.ndarray,
                       num_gt: int,
                       min_recall: float = 0.1,
                       min_precision: float = 0.1) -> float:
    """nuScenes AP of one class at one threshold from matched predictions.

    Args:
        scores (np.ndarray): (P,) scores of all predictions of the class,
            in the order their ties are broken by (the later first).
        is_tp (np.ndarray): (P,) bool, whether each prediction matched.
        num_gt (int): Number of ground truths of the class.
        min_recall (float): Recalls up to this one are left out.
            Defaults to 0.1.
        min_precision (float): Precision subtracted (and clipped at 0)
            before averaging, then normalised away. Defaults to 0.1.

    Returns:
        float: AP in [0, 1]; ``nan`` when ``num_gt`` is 0.
    """
    if num_gt == 0:
        return float('nan')
    is_tp = np.asarray(is_tp, dtype=bool)
    if not is_tp.any():
        return 0.0
    order = _descending_order(np.asarray(scores, dtype=np.float64))
    tp = np.cumsum(is_tp[order]).astype(np.float64)
    fp = np.cumsum(~is_tp[order]).astype(np.float64)
    precision = tp / (tp + fp)
    recall = tp / float(num_gt)
    grid = np.linspace(0.0, 1.0, _NUM_RECALLS)
    precision = np.interp(grid, recall, precision, right=0.0)
    kept = precision[round((_NUM_RECALLS - 1) * min_recall) + 1:]
    kept = np.clip(kept - min_precision, 0.0, None)
    return float(np.mean(kept)) / (1.0 - min_precision)


@METRICS.register_module()
class CentreDistanceMetric(BaseMetric):
    """BEV centre-distance AP (nuScenes) and ranged depth error, KITTI data.

    Usable beside ``KittiMetric`` in any KITTI-format mono3d config::

        val_evaluator = [
            dict(type='KittiMetric', ann_file=ann, metric='bbox'),
            dict(type='CentreDistanceMetric', ann_file=ann)]

    **AP.** Predictions and ground truth are matched per class by the
    distance between their centres on the ground plane, the x-z plane of
    the camera frame, greedily by descending score, and AP is computed as
    the nuScenes devkit does (see the module docstring for the definition
    and the citations).

    **Depth error.** The matches at ``depth_match_thr`` (of every class,
    predictions with score >= ``depth_min_score``) give
    ``|z_pred - z_gt|``, the absolute error of the depth (camera z, m),
    binned by the ground-truth depth into ``depth_bins``
    (``lo <= z_gt < hi``).

    Reported keys (with the ``CentreDist/`` prefix; ``{t}`` is a threshold
    such as ``2.0``, ``{bin}`` a bin such as ``0-20m`` or ``40m+``):

    - ``{Class}_AP_{t}m``: AP of a class at threshold ``t`` m, in [0, 1];
    - ``{Class}_mAP``: its mean over the thresholds;
    - ``mAP_{t}m``: mean over the classes at threshold ``t``;
    - ``mAP``: mean of the ``{Class}_mAP``;
    - ``depth_abs_err_{bin}`` / ``depth_abs_err_median_{bin}``: mean /
      median absolute depth error (m) of the matched objects whose ground
      truth lies in the bin, ``nan`` when there are none;
    - ``depth_count_{bin}``: their number;
    - ``depth_abs_err_all``, ``depth_abs_err_median_all``,
      ``depth_count_all``: the same over all matched objects;
    - with ``depth_per_class=True`` also ``{Class}_depth_abs_err_{bin}``,
      ``{Class}_depth_abs_err_median_{bin}``, ``{Class}_depth_count_{bin}``.

    A class of ``dataset_meta['classes']`` with no ground truth in the
    evaluated frames gets ``nan`` for its APs and is left out of the means
    (``mAP`` is ``nan`` when no class has ground truth).

    **Ground truth** is read from the info file as ``KittiMetric`` reads it:
    a data sample's ``sample_idx`` (set by mmengine's ``BaseDataset`` to the
    dataset index) indexes ``data_list``, so point the metric at the
    dataset's own ``ann_file`` and do not subsample it (``indices``,
    ``load_interval``).  Only frames with a prediction are evaluated.  Each
    ``instances[*]`` gives ``bbox_3d = [x, y, z, l, h, w, ry]`` (camera
    coordinates, m; x and z are those of the gravity centre too) and
    ``bbox_label_3d`` (``bbox_label`` if absent), an index into the info's
    ``metainfo['categories']`` (mmdet3d's KITTI order if absent).  Labels
    -1 (DontCare) and classes not in ``dataset_meta['classes']`` are
    ignored; all other objects count, whatever their KITTI difficulty (a
    far or occluded object missed is a miss here, unlike in ``KittiMetric``
    which ignores them).  Predictions must be ``CameraInstance3DBoxes``;
    their ``labels_3d`` index ``dataset_meta['classes']`` (others are
    ignored).

    Args:
        ann_file (str): mmdet3d v2 KITTI-format info file
            (``kitti_infos_val.pkl``).
        dist_thrs (Sequence[float]): Matching thresholds (m). Defaults to
            nuScenes' ``(0.5, 1.0, 2.0, 4.0)``.
        min_recall (float): nuScenes' ``min_recall``. Defaults to 0.1.
        min_precision (float): nuScenes' ``min_precision``. Defaults to 0.1.
        depth_match_thr (float): Threshold (m) of the matches whose depth
            error is reported; need not be one of ``dist_thrs``. Defaults
            to 2.0.
        depth_bins (Sequence[float]): Edges (m) of the ground-truth depth
            bins, increasing; the last may be ``float('inf')``. Defaults to
            ``(0, 20, 40, inf)``.
        depth_min_score (float): Matches of predictions below this score
            are left out of the depth error (they still count for AP).
            Defaults to 0.
        depth_per_class (bool): Also report the depth error per class.
            Defaults to False.
        backend_args (dict, optional): File backend of ``ann_file``.
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix. Defaults to ``'CentreDist'``.
    """
    default_prefix = 'CentreDist'

    def __init__(self,
                 ann_file: str,
                 dist_thrs: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
                 min_recall: float = 0.1,
                 min_precision: float = 0.1,
                 depth_match_thr: float = 2.0,
                 depth_bins: Sequence[float] = (0.0, 20.0, 40.0,
                                                float('inf')),
                 depth_min_score: float = 0.0,
                 depth_per_class: bool = False,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        dist_thrs = [float(t) for t in dist_thrs]
        if not dist_thrs or min(dist_thrs) <= 0:
            raise ValueError('CentreDistanceMetric: dist_thrs must be a '
                             f'non-empty list of positive metres, got '
                             f'{dist_thrs}')
        if not 0.0 <= min_recall <= 1.0:
            raise ValueError('CentreDistanceMetric: min_recall must be in '
                             f'[0, 1], got {min_recall}')
        if not 0.0 <= min_precision < 1.0:
            raise ValueError('CentreDistanceMetric: min_precision must be '
                             f'in [0, 1), got {min_precision}')
        if depth_match_thr <= 0:
            raise ValueError('CentreDistanceMetric: depth_match_thr must be '
                             f'positive (m), got {depth_match_thr}')
        edges = [float(e) for e in depth_bins]
        if len(edges) < 2 or any(
                b <= a
                for a, b in zip(edges[:-1], edges[1:], strict=True)):
            raise ValueError(
                'CentreDistanceMetric: depth_bins must be at least two '
                f'increasing edges in metres, e.g. (0, 20, 40, '
                f"float('inf')), got {list(depth_bins)}")
        self.ann_file = ann_file
        self.dist_thrs = dist_thrs
        self.min_recall = float(min_recall)
        self.min_precision = float(min_precision)
        self.depth_match_thr = float(depth_match_thr)
        self.depth_bins = edges
        self.depth_min_score = float(depth_min_score)
        self.depth_per_class = depth_per_class
        self.backend_args = backend_args
        self._infos: Optional[Tuple[List[dict], Dict[int, str]]] = None

    # ------------------------------------------------------------------ #
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keeps the ground-plane centres, depths, scores and labels.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Model outputs (dicts, as mmengine's
                ``Evaluator`` passes them, or ``Det3DDataSample``) with
                ``pred_instances_3d`` (``bboxes_3d``: CameraInstance3DBoxes,
                (N,) ``scores_3d``, (N,) ``labels_3d``) and ``sample_idx``.
        """
        for sample in data_samples:
            pred = _get(sample, 'pred_instances_3d')
            if pred is None:
                raise KeyError('CentreDistanceMetric: a data sample has no '
                               'pred_instances_3d')
            sample_idx = _get(sample, 'sample_idx')
            if sample_idx is None:
                raise KeyError(
                    "CentreDistanceMetric: a data sample has no 'sample_idx'"
                    " (the index into the info file's data_list); keep it "
                    'in Pack3DDetInputs(meta_keys=...)')
            boxes = _get(pred, 'bboxes_3d')
            if not isinstance(boxes, CameraInstance3DBoxes):
                raise TypeError(
                    'CentreDistanceMetric: pred_instances_3d.bboxes_3d must '
                    'be CameraInstance3DBoxes (a mono3d detector), got '
                    f'{type(boxes).__name__}')
            centre = boxes.gravity_center.detach().cpu().double().numpy()
            scores = torch.as_tensor(_get(pred, 'scores_3d'))
            labels = torch.as_tensor(_get(pred, 'labels_3d'))
            self.results.append(
                dict(
                    sample_idx=int(sample_idx),
                    xz=centre[:, [0, 2]].reshape(-1, 2),
                    scores=scores.detach().cpu().double().numpy().reshape(-1),
                    labels=labels.detach().cpu().long().numpy().reshape(-1)))

    # ------------------------------------------------------------------ #
    def _load_infos(self) -> Tuple[List[dict], Dict[int, str]]:
        """``data_list`` and the label -> name map of the info file."""
        if self._infos is None:
            data = load(self.ann_file, backend_args=self.backend_args)
            if not isinstance(data, dict) or 'data_list' not in data:
                raise ValueError(
                    f'CentreDistanceMetric: {self.ann_file} is not an '
                    "mmdet3d v2 info file (a dict with 'data_list'); "
                    'convert it with tools/create_data.py or ddml.data_tools')
            categories = (data.get('metainfo') or {}).get('categories')
            if categories:
                names = {int(v): k for k, v in categories.items() if v >= 0}
            else:
                names = dict(enumerate(_KITTI_CATEGORIES))
            self._infos = (data['data_list'], names)
        return self._infos

    def _ground_truth(self, info: dict, label_names: Dict[int, str],
                      class_index: Dict[str, int]
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ground-plane centres, depths and class indices of one frame.

        Returns:
            tuple: (M, 2) x-z centres (m), (M,) depths z (m), (M,) indices
            into ``dataset_meta['classes']``; DontCare and other classes
            are dropped.
        """
        boxes, labels = [], []
        for inst in info.get('instances', []):
            lab = int(inst.get('bbox_label_3d', inst.get('bbox_label', -1)))
            cls = class_index.get(label_names.get(lab, ''), -1)
            if lab < 0 or cls < 0:
                continue
            boxes.append(inst['bbox_3d'][:3])
            labels.append(cls)
        xyz = np.asarray(boxes, dtype=np.float64).reshape(-1, 3)
        return xyz[:, [0, 2]], xyz[:, 2], np.asarray(labels, dtype=np.int64)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Computes the APs and depth errors.

        Args:
            results (List[dict]): Outputs of :meth:`process` (all ranks).

        Returns:
            Dict[str, float]: Key (without the prefix) -> value; see the
            class docstring.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        classes = (self.dataset_meta or {}).get('classes')
        if not classes:
            raise ValueError(
                'CentreDistanceMetric needs dataset_meta["classes"] (the '
                'runner sets it from the dataset; set metric.dataset_meta '
                'when calling it directly)')
        classes = list(classes)
        class_index = {c: i for i, c in enumerate(classes)}
        data_list, label_names = self._load_infos()

        thrs = list(self.dist_thrs)
        if self.depth_match_thr not in thrs:
            thrs.append(self.depth_match_thr)
        # Per class: scores and per-threshold TP flags of all predictions,
        # in frame order (the devkit's tie order), and the number of GT.
        scores: List[List[np.ndarray]] = [[] for _ in classes]
        tps = [[[] for _ in thrs] for _ in classes]
        num_gt = np.zeros(len(classes), dtype=np.int64)
        depth_pairs: List[Tuple[int, float, float]] = []  # cls, gt, pred
        seen = set()
        for res in results:
            idx = res['sample_idx']
            if idx in seen:
                continue
            seen.add(idx)
            if not 0 <= idx < len(data_list):
                raise IndexError(
                    f'CentreDistanceMetric: sample_idx {idx} is outside '
                    f'{self.ann_file} ({len(data_list)} frames); point '
                    "ann_file at the dataset's own info file")
            gt_xz, gt_z, gt_cls = self._ground_truth(data_list[idx],
                                                     label_names, class_index)
            for c in range(len(classes)):
                g = gt_cls == c
                num_gt[c] += int(g.sum())
                p = res['labels'] == c
                if not p.any():
                    continue
                pxz, ps = res['xz'][p], res['scores'][p]
                scores[c].append(ps)
                for k, thr in enumerate(thrs):
                    match = greedy_centre_match(pxz, ps, gt_xz[g], thr)
                    tps[c][k].append(match >= 0)
                    if thr != self.depth_match_thr:
                        continue
                    gz = gt_z[g]
                    for j, m in enumerate(match):
                        if m >= 0 and ps[j] >= self.depth_min_score:
                            depth_pairs.append((c, gz[m], pxz[j, 1]))

        out: Dict[str, float] = {}
        ap = np.full((len(classes), len(self.dist_thrs)), np.nan)
        for c, name in enumerate(classes):
            s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
            for k, thr in enumerate(self.dist_thrs):
                tp = (np.concatenate(tps[c][k])
                      if tps[c][k] else np.zeros(0, dtype=bool))
                ap[c, k] = centre_distance_ap(s, tp, int(num_gt[c]),
                                              self.min_recall,
                                              self.min_precision)
                out[f'{name}_AP_{_fmt_thr(thr)}m'] = float(ap[c, k])
            out[f'{name}_mAP'] = float(np.mean(ap[c]))
        has_gt = num_gt > 0
        for k, thr in enumerate(self.dist_thrs):
            out[f'mAP_{_fmt_thr(thr)}m'] = (
                float(np.mean(ap[has_gt, k])) if has_gt.any() else math.nan)
        out['mAP'] = float(np.mean(ap[has_gt])) if has_gt.any() else math.nan

        pairs = np.asarray(depth_pairs, dtype=np.float64).reshape(-1, 3)
        groups = [('', np.ones(len(pairs), dtype=bool))]
        if self.depth_per_class:
            groups += [(f'{name}_', pairs[:, 0] == c)
                       for c, name in enumerate(classes)]
        bins = list(zip(_bin_names(self.depth_bins), self.depth_bins[:-1],
                        self.depth_bins[1:], strict=True))
        bins.append(('all', -math.inf, math.inf))
        for key, sel in groups:
            gt_z, err = pairs[sel, 1], np.abs(pairs[sel, 2] - pairs[sel, 1])
            for bname, lo, hi in bins:
                e = err[(gt_z >= lo) & (gt_z < hi)]
                out[f'{key}depth_abs_err_{bname}'] = (
                    float(np.mean(e)) if len(e) else math.nan)
                out[f'{key}depth_abs_err_median_{bname}'] = (
                    float(np.median(e)) if len(e) else math.nan)
                out[f'{key}depth_count_{bname}'] = int(len(e))

        print_log(self._table(out, classes, num_gt, len(seen)), logger=logger)
        return out

    def _table(self, out: Dict[str, float], classes: List[str],
               num_gt: np.ndarray, num_frames: int) -> str:
        """A readable summary of ``out`` for the log."""
        thr_names = [_fmt_thr(t) for t in self.dist_thrs]
        lines = [
            f'Centre-distance AP (nuScenes matching, x-z plane) over '
            f'{num_frames} frames',
            f'{"class":<12}{"#GT":>6}' +
            ''.join(f'{"AP@" + t + "m":>10}' for t in thr_names) +
            f'{"mAP":>8}'
        ]
        for c, name in enumerate(classes):
            lines.append(f'{name:<12}{int(num_gt[c]):>6}' + ''.join(
                f'{out[f"{name}_AP_{t}m"]:>10.4f}' for t in thr_names) +
                         f'{out[f"{name}_mAP"]:>8.4f}')
        lines.append(f'{"mean":<18}' + ''.join(
            f'{out[f"mAP_{t}m"]:>10.4f}' for t in thr_names) +
                     f'{out["mAP"]:>8.4f}')
        lines.append(f'Depth |z_pred - z_gt| (m) of the matches at '
                     f'{_fmt_thr(self.depth_match_thr)} m by GT depth:')
        for bname in _bin_names(self.depth_bins) + ['all']:
            lines.append(
                f'  {bname:<8} mean {out[f"depth_abs_err_{bname}"]:.3f}  '
                f'median {out[f"depth_abs_err_median_{bname}"]:.3f}  '
                f'n {out[f"depth_count_{bname}"]}')
        return '\n'.join(lines)
