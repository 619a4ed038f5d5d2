"""Waymo Open Dataset 3D detection metrics (AP, APH, LET-AP/APL/APH) in numpy.

A re-implementation, from the published definitions, of what Waymo's devkit
computes in ``waymo_open_dataset/metrics`` (``detection_metrics.cc``,
``metrics_utils.cc``, ``matcher.cc``, ``iou.cc``, ``breakdown_generator.cc``)
and its command-line tools ``compute_detection_metrics_main.cc`` and
``compute_detection_let_metrics_main.cc``; see also Sun et al., "Scalability
in Perception for Autonomous Driving: Waymo Open Dataset", CVPR 2020 (AP/APH)
and Hung et al., "Let-3D-AP: Longitudinal Error Tolerant 3D Average Precision
for Camera-Only 3D Detection", arXiv:2206.07705 (LET).  It needs neither
TensorFlow nor a devkit binary; ``tests/test_evaluation/test_waymo_oracle.py``
checks it against Waymo's ``detection_metrics`` TensorFlow op.

The procedure, per frame and per breakdown shard (object type; object type x
range bin ``[0, 30)``, ``[30, 50)``, ``[50, inf)`` m of the box centre from
the frame origin; predictions and ground truths are both sharded by their
own type and range):

1. For every score cutoff (by default ``0.00, 0.01, ..., 0.99, 1.00``) keep
   the predictions with ``score >= cutoff``.
2. Match them to *all* ground truths of the shard with the Hungarian
   algorithm (``scipy.optimize.linear_sum_assignment``) maximising the sum of
   IoUs quantised to ``round(IoU * 1e6)``; a pair can match only when its IoU
   reaches the class threshold (0.7 vehicle, 0.5 pedestrian / sign /
   cyclist).  With LET, the IoU is the LET-IoU, a pair also needs a
   longitudinal affinity > 0, and the weight is ``LET-IoU * affinity``.
3. For difficulty level ``L``: TP = matched predictions (whatever the matched
   ground truth's level), FP = unmatched predictions, FN = unmatched ground
   truths whose level ``<= L``.  The heading accuracy of a TP is
   ``1 - |dheading| / pi`` (``dheading`` wrapped to ``[0, pi]``); its
   longitudinal affinity is 1 without LET.

TP, FP, FN and the sums of heading accuracy and longitudinal affinity are
summed over frames per cutoff.  Precision ``TP / (TP + FP)`` (0 when there
is no prediction), the heading- and affinity-weighted precisions
``sum / (TP + FP)``, recall ``TP / (TP + FN)`` (0 when nothing to find; the
precision of a point with recall 0 is set to 1) give a P/R curve per
breakdown; the AP is the area under its monotone (max-from-the-right)
envelope, with points inserted every ``desired_recall_delta`` (0.05) of
recall where the curve is sparser, and the precision at recall 0 set to the
largest measured one; trapezoidal integration.  Arithmetic that the devkit
does in single precision (score cutoffs, recalls, the recall padding, the
longitudinal tolerance) is done in single precision here too, so that
figures agree to ~1e-6.

Ground-truth difficulty (from the devkit's tools): ground truths with no
LiDAR point are dropped; with <= 5 points, or labelled LEVEL_2, they are
LEVEL_2, else LEVEL_1.

One known source of disagreement with the devkit remains: when several
assignments have the same total quantised weight, the two Hungarian
implementations may pick different ones; the number of TPs is then equal in
all but contrived cases, the heading accuracies may differ (e.g. two
predictions at the same place, one flipped by pi).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from .waymo_iou import box3d_iou_matrix

__all__ = [
    'TYPE_VEHICLE', 'TYPE_PEDESTRIAN', 'TYPE_SIGN', 'TYPE_CYCLIST',
    'TYPE_NAMES', 'LEVEL_1', 'LEVEL_2', 'RANGE_BINS', 'LETConfig',
    'WaymoEvalConfig', 'WaymoFrame', 'default_score_cutoffs',
    'difficulty_from_num_points', 'heading_accuracy',
    'longitudinal_affinity', 'let_iou_matrix', 'mean_average_precision',
    'WaymoDetectionEvaluator', 'evaluate_waymo', 'waymo_3d_config',
    'waymo_let_config'
]

# Waymo label types (waymo_open_dataset/label.proto).
TYPE_VEHICLE = 1
TYPE_PEDESTRIAN = 2
TYPE_SIGN = 3
TYPE_CYCLIST = 4
TYPE_NAMES = {
    TYPE_VEHICLE: 'Vehicle',
    TYPE_PEDESTRIAN: 'Pedestrian',
    TYPE_SIGN: 'Sign',
    TYPE_CYCLIST: 'Cyclist'
}
_NUM_TYPES = 4
LEVEL_1 = 1
LEVEL_2 = 2
#: Range breakdown bins (m) of the devkit's RANGE generator.
RANGE_BINS = ((0.0, 30.0), (30.0, 50.0), (50.0, math.inf))
_LEVEL2_MAX_POINTS = 5
_MAX_IOU_QUANT = 1000 * 1000
_F32 = np.float32


def default_score_cutoffs() -> np.ndarray:
    """Score cutoffs of the devkit's tools: ``i * 0.01`` for i < 100, 1.0.

    Returns:
        np.ndarray: (101,) float32 cutoffs.
    """
    return np.array([i * 0.01 for i in range(100)] + [1.0], dtype=_F32)


@dataclass(frozen=True)
class LETConfig:
    """Longitudinal-error-tolerant matching (camera-only challenge defaults).

    Args:
        longitudinal_tolerance_percentage (float): Tolerance as a fraction of
            the ground truth's range from the sensor. Defaults to 0.1.
        min_longitudinal_tolerance_meter (float): Lower bound of the
            tolerance (m). Defaults to 0.5.
        sensor_location (tuple[float]): Sensor (x, y, z) in the vehicle frame
            (m); the devkit's challenge tool uses the cameras' mean location
            (1.43, 0, 2.18).
    """
    longitudinal_tolerance_percentage: float = 0.1
    min_longitudinal_tolerance_meter: float = 0.5
    sensor_location: Tuple[float, float, float] = (1.43, 0.0, 2.18)


@dataclass(frozen=True)
class WaymoEvalConfig:
    """What to evaluate and how.

    Args:
        iou_thresholds (dict[int, float]): IoU needed to match, per Waymo
            type.
        let (LETConfig, optional): Enables LET matching. Defaults to None.
        difficulty_levels (tuple[int]): Levels to report. Defaults to (1, 2).
        breakdowns (tuple[str]): ``'OBJECT_TYPE'`` and/or ``'RANGE'``.
        score_cutoffs (np.ndarray): Cutoffs of the P/R curve.
        desired_recall_delta (float): Max recall gap before padding the P/R
            curve. Defaults to 0.05.
        min_precision (float): Precisions below it count as 0. Defaults to 0.
        min_heading_accuracy (float): TPs with heading accuracy <= it are
            dropped. Defaults to -1 (none).
    """
    iou_thresholds: Dict[int, float] = field(
        default_factory=lambda: {
            TYPE_VEHICLE: 0.7,
            TYPE_PEDESTRIAN: 0.5,
            TYPE_SIGN: 0.5,
            TYPE_CYCLIST: 0.5
        })
    let: Optional[LETConfig] = None
    difficulty_levels: Tuple[int, ...] = (LEVEL_1, LEVEL_2)
    breakdowns: Tuple[str, ...] = ('OBJECT_TYPE', 'RANGE')
    score_cutoffs: np.ndarray = field(default_factory=default_score_cutoffs)
    desired_recall_delta: float = 0.05
    min_precision: float = 0.0
    min_heading_accuracy: float = -1.0

    def __post_init__(self):
        for b in self.breakdowns:
            if b not in ('OBJECT_TYPE', 'RANGE'):
                raise ValueError(f'unknown breakdown {b!r}; supported: '
                                 "'OBJECT_TYPE', 'RANGE'")
        for lv in self.difficulty_levels:
            if lv not in (LEVEL_1, LEVEL_2):
                raise ValueError(f'difficulty level must be 1 or 2, got {lv}')
        missing = [t for t in TYPE_NAMES if t not in self.iou_thresholds]
        if missing:
            raise ValueError(f'iou_thresholds lacks Waymo types {missing}')


def waymo_3d_config(**kwargs) -> WaymoEvalConfig:
    """Config of the devkit's ``compute_detection_metrics_main`` (3D AP/APH).

    LEVEL_1 and LEVEL_2, OBJECT_TYPE and RANGE breakdowns, IoU 0.7 vehicle,
    0.5 otherwise.
    """
    return WaymoEvalConfig(**kwargs)


def waymo_let_config(let: Optional[LETConfig] = None,
                     **kwargs) -> WaymoEvalConfig:
    """Config of ``compute_detection_let_metrics_main`` (camera-only LET).

    IoU 0.5 vehicle, 0.3 pedestrian / sign / cyclist, LET with 10 %
    longitudinal tolerance, >= 0.5 m, sensor at (1.43, 0, 2.18); the
    challenge reports LEVEL_2 only (``difficulty_levels=(2,)``).
    """
    kwargs.setdefault(
        'iou_thresholds', {
            TYPE_VEHICLE: 0.5,
            TYPE_PEDESTRIAN: 0.3,
            TYPE_SIGN: 0.3,
            TYPE_CYCLIST: 0.3
        })
    kwargs.setdefault('difficulty_levels', (LEVEL_2, ))
    return WaymoEvalConfig(let=let or LETConfig(), **kwargs)


class WaymoFrame(NamedTuple):
    """Predictions and ground truths of one frame (vehicle frame).

    Boxes are (K, 7) ``(cx, cy, cz, length, width, height, heading)`` with
    the gravity centre, metres / radians.  Types are Waymo types (1 vehicle,
    2 pedestrian, 3 sign, 4 cyclist); difficulty is 1 or 2.
    """
    pred_boxes: np.ndarray
    pred_scores: np.ndarray
    pred_types: np.ndarray
    gt_boxes: np.ndarray
    gt_types: np.ndarray
    gt_difficulty: np.ndarray


def difficulty_from_num_points(num_points: np.ndarray,
                               labelled: Optional[np.ndarray] = None
                               ) -> Tuple[np.ndarray, np.ndarray]:
    """Waymo's detection difficulty from the number of LiDAR points in a box.

    Mirrors the devkit's tools: boxes without points are ignored; a box with
    ``<= 5`` points is LEVEL_2 unless it carries a human label (1 or 2).

    Args:
        num_points (np.ndarray): (M,) number of LiDAR points per box.
        labelled (np.ndarray, optional): (M,) annotated level, 0 = unknown.

    Returns:
        tuple[np.ndarray, np.ndarray]: (M,) bool mask of the boxes to keep and
        (M,) int difficulty levels (1 or 2).
    """
    pts = np.asarray(num_points).reshape(-1)
    keep = pts > 0
    level = np.where(pts <= _LEVEL2_MAX_POINTS, LEVEL_2, LEVEL_1)
    if labelled is not None:
        lab = np.asarray(labelled).reshape(-1)
        level = np.where((lab == LEVEL_1) | (lab == LEVEL_2), lab, level)
    return keep, level.astype(np.int64)


def _normalize_angle(a: np.ndarray) -> np.ndarray:
    """Wraps angles to [-pi, pi)."""
    return (np.asarray(a, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def heading_accuracy(pred_heading: np.ndarray,
                     gt_heading: np.ndarray) -> np.ndarray:
    """Heading accuracy ``1 - |dheading| / pi`` in [0, 1] (APH weight).

    Args:
        pred_heading (np.ndarray): Predicted headings (rad).
        gt_heading (np.ndarray): Ground-truth headings (rad), broadcastable.

    Returns:
        np.ndarray: Heading accuracies.
    """
    d = np.abs(
        _normalize_angle(np.asarray(pred_heading, _F32)) -
        _normalize_angle(np.asarray(gt_heading, _F32)))
    d = np.where(d > np.pi, 2 * np.pi - d, d)
    return np.clip(1.0 - d / np.pi, 0.0, 1.0)


def longitudinal_affinity(pred_boxes: np.ndarray, gt_boxes: np.ndarray,
                          let: LETConfig) -> np.ndarray:
    """Pairwise longitudinal affinity ``clip(1 - e_lon / tol, 0, 1)``.

    ``e_lon`` is the error along the sensor-to-ground-truth line of sight of
    the prediction's centre projected on that line; ``tol = max(p * r_gt,
    min_tol)`` with ``r_gt`` the ground truth's range from the sensor.

    Args:
        pred_boxes (np.ndarray): (N, 7) predicted boxes, vehicle frame.
        gt_boxes (np.ndarray): (M, 7) ground-truth boxes, vehicle frame.
        let (LETConfig): LET settings.

    Returns:
        np.ndarray: (N, M) affinities in [0, 1].
    """
    s = np.asarray(let.sensor_location, dtype=np.float64)
    p = np.asarray(pred_boxes, np.float64)[:, :3] - s
    g = np.asarray(gt_boxes, np.float64)[:, :3] - s
    dot = p @ g.T
    g_rng = np.maximum(np.linalg.norm(g, axis=1), 1e-6)
    p_rng = np.maximum(np.linalg.norm(p, axis=1), 1e-6)
    cos = dot / g_rng[None, :] / p_rng[:, None]
    pct = float(_F32(let.longitudinal_tolerance_percentage))
    min_tol = float(_F32(let.min_longitudinal_tolerance_meter))
    # The devkit holds the tolerance in single precision.
    tol = np.maximum(pct * g_rng, min_tol).astype(_F32).astype(np.float64)
    err = np.abs((p_rng[:, None] * cos - g_rng[None, :]) / tol[None, :])
    return np.clip(1.0 - err, 0.0, 1.0)


def let_iou_matrix(pred_boxes: np.ndarray, gt_boxes: np.ndarray,
                   let: LETConfig) -> np.ndarray:
    """Pairwise LET-IoU: IoU after moving each prediction along its line of
    sight (from the sensor) to the point closest to the ground truth centre.

    Args:
        pred_boxes (np.ndarray): (N, 7) predicted boxes, vehicle frame.
        gt_boxes (np.ndarray): (M, 7) ground-truth boxes, vehicle frame.
        let (LETConfig): LET settings.

    Returns:
        np.ndarray: (N, M) LET-IoU.
    """
    s = np.asarray(let.sensor_location, dtype=np.float64)
    pb = np.asarray(pred_boxes, np.float64).copy()
    gb = np.asarray(gt_boxes, np.float64).copy()
    pb[:, :3] -= s
    gb[:, :3] -= s
    out = np.zeros((pb.shape[0], gb.shape[0]))
    p_sq = np.maximum((pb[:, :3]**2).sum(1), 1e-6)
    for j in range(gb.shape[0]):
        mult = (pb[:, :3] @ gb[j, :3]) / p_sq
        aligned = pb.copy()
        aligned[:, :3] *= mult[:, None]
        out[:, j] = box3d_iou_matrix(aligned, gb[j:j + 1])[:, 0]
    return out


def mean_average_precision(precisions: Sequence[float],
                           recalls: Sequence[float],
                           max_recall_delta: float = 0.05) -> float:
    """Area under the P/R curve as Waymo's devkit integrates it.

    Keeps the best precision per recall (recall 0 starts at precision 1),
    sweeps from high to low recall taking the running max of precision,
    inserts a point every ``max_recall_delta`` of recall gap (single
    precision, tolerance 1e-6), sets the recall-0 precision to that of the
    next point and integrates with the trapezoidal rule.

    Args:
        precisions (Sequence[float]): Precision per score cutoff.
        recalls (Sequence[float]): Recall per score cutoff.
        max_recall_delta (float): Padding step. Defaults to 0.05.

    Returns:
        float: Average precision in [0, 1].
    """
    if len(precisions) != len(recalls):
        raise ValueError('precisions and recalls differ in length')
    if not 0.0 < max_recall_delta <= 1.0:
        raise ValueError('max_recall_delta must be in (0, 1]')
    if len(precisions) == 0:
        return 0.0
    best: Dict[float, float] = {0.0: 1.0}
    for p, r in zip(precisions, recalls, strict=True):
        r = float(_F32(r))
        best[r] = max(best.get(r, 0.0), float(_F32(p)))
    delta = _F32(max_recall_delta)
    err = _F32(1e-6)
    keys = sorted(best)
    last_recall = _F32(keys[0])
    max_p = 0.0
    curve: List[Tuple[float, float]] = []  # (precision, recall), recall desc
    for r in reversed(keys):
        r32 = _F32(r)
        while _F32(last_recall - r32) > _F32(delta + err):
            last_recall = _F32(last_recall - delta)
            curve.append((max_p, float(last_recall)))
        max_p = max(best[r], max_p)
        curve.append((max_p, r))
        last_recall = r32
    if len(curve) >= 2:
        curve[-1] = (curve[-2][0], curve[-1][1])
    ap = 0.0
    for i in range(1, len(curve)):
        ap += 0.5 * (curve[i - 1][1] - curve[i][1]) * (
            curve[i - 1][0] + curve[i][0])
    return float(ap)


def _range_bin(boxes: np.ndarray) -> np.ndarray:
    rng = np.sqrt((np.asarray(boxes, np.float64)[:, :3]**2).sum(1))
    return np.where(rng < 30.0, 0, np.where(rng < 50.0, 1, 2))


class WaymoDetectionEvaluator:
    """Accumulates per-frame TP/FP/FN at every score cutoff and turns them
    into AP / APH / APL per breakdown shard and difficulty level.

    Args:
        config (WaymoEvalConfig): What to evaluate.

    Example:
        >>> ev = WaymoDetectionEvaluator(waymo_3d_config())
        >>> ev.add_frame(frame)  # doctest: +SKIP
        >>> results = ev.compute()  # doctest: +SKIP
        >>> results[('OBJECT_TYPE', TYPE_VEHICLE, None, 1)]['AP']  # +SKIP
    """

    def __init__(self, config: WaymoEvalConfig) -> None:
        self.config = config
        self.cutoffs = np.asarray(config.score_cutoffs, dtype=_F32)
        self._levels = tuple(config.difficulty_levels)
        # key -> (num_levels, num_cutoffs, 5): tp, fp, fn, sum_ha, sum_la.
        self._acc: Dict[Tuple, np.ndarray] = {}
        for key in self.breakdown_keys():
            self._acc[key] = np.zeros(
                (len(self._levels), len(self.cutoffs), 5), dtype=np.float64)
        self.num_frames = 0

    def breakdown_keys(self) -> List[Tuple]:
        """Keys ``(breakdown, waymo_type, range_bin or None)`` evaluated."""
        keys = []
        for b in self.config.breakdowns:
            for t in range(1, _NUM_TYPES + 1):
                if b == 'OBJECT_TYPE':
                    keys.append((b, t, None))
                else:
                    keys.extend((b, t, r) for r in range(len(RANGE_BINS)))
        return keys

    # ------------------------------------------------------------------ #
    def _pair_tables(self, pb, pt, gb, gt):
        """IoU (float32), can-match mask and weights for all pairs."""
        same = pt[:, None] == gt[None, :]
        if self.config.let is None:
            iou = box3d_iou_matrix(pb, gb)
            aff = np.ones_like(iou)
        else:
            iou = let_iou_matrix(pb, gb, self.config.let)
            aff = longitudinal_affinity(pb, gb, self.config.let)
        iou = np.where(same, iou, 0.0).astype(_F32)
        aff = np.where(same, aff, 0.0).astype(_F32)
        thr = np.array(
            [self.config.iou_thresholds[int(t)] for t in pt], dtype=_F32)
        can = same & (iou >= thr[:, None])
        weight = (iou * aff).astype(_F32)
        if self.config.let is not None:
            can &= aff != 0.0
        quant = np.round(weight.astype(np.float64) * _MAX_IOU_QUANT)
        quant = np.where(can, quant, 0.0)
        return can, quant, aff.astype(np.float64)

    def add_frame(self, frame: WaymoFrame) -> None:
        """Matches one frame and adds its measurements.

        Args:
            frame (WaymoFrame): Predictions and ground truths of the frame.
        """
        pb = _check_boxes(frame.pred_boxes, 'pred_boxes')
        gb = _check_boxes(frame.gt_boxes, 'gt_boxes')
        ps = np.asarray(frame.pred_scores, dtype=_F32).reshape(-1)
        pt = np.asarray(frame.pred_types, dtype=np.int64).reshape(-1)
        gt = np.asarray(frame.gt_types, dtype=np.int64).reshape(-1)
        gd = np.asarray(frame.gt_difficulty, dtype=np.int64).reshape(-1)
        if not (len(ps) == len(pt) == len(pb)):
            raise ValueError('pred_boxes, pred_scores and pred_types differ '
                             f'in length: {len(pb)}, {len(ps)}, {len(pt)}')
        if not (len(gt) == len(gd) == len(gb)):
            raise ValueError('gt_boxes, gt_types and gt_difficulty differ in '
                             f'length: {len(gb)}, {len(gt)}, {len(gd)}')
        for name, types in (('pred_types', pt), ('gt_types', gt)):
            bad = types[(types < 1) | (types > _NUM_TYPES)]
            if bad.size:
                raise ValueError(f'{name} must be Waymo types 1..4, got '
                                 f'{np.unique(bad).tolist()}')
        self.num_frames += 1
        if len(pb) == 0 and len(gb) == 0:
            return
        can, quant, aff = self._pair_tables(pb, pt, gb, gt)
        ha = heading_accuracy(pb[:, 6][:, None], gb[:, 6][None, :])
        p_range = _range_bin(pb) if len(pb) else np.zeros(0, np.int64)
        g_range = _range_bin(gb) if len(gb) else np.zeros(0, np.int64)

        for (b, t, r), acc in self._acc.items():
            p_sel = pt == t
            g_sel = gt == t
            if b == 'RANGE':
                p_sel &= p_range == r
                g_sel &= g_range == r
            p_idx = np.flatnonzero(p_sel)
            g_idx = np.flatnonzero(g_sel)
            if len(p_idx) == 0 and len(g_idx) == 0:
                continue
            self._add_shard(acc, p_idx, g_idx, ps, gd, can, quant, aff, ha)

    def _add_shard(self, acc, p_idx, g_idx, ps, gd, can, quant, aff, ha):
        order = np.argsort(-ps[p_idx], kind='stable')
        p_sorted = p_idx[order]
        scores = ps[p_sorted]
        # Subsets are nested: the count of predictions above each cutoff
        # identifies the subset.
        counts = (scores[None, :] >= self.cutoffs[:, None]).sum(1)
        g_level = gd[g_idx]
        min_ha = self.config.min_heading_accuracy
        for k in np.unique(counts):
            sub = p_sorted[:k]
            matched_p = np.zeros(0, np.int64)
            matched_g = np.zeros(0, np.int64)
            if k > 0 and len(g_idx) > 0:
                c = can[np.ix_(sub, g_idx)]
                if c.any():
                    w = quant[np.ix_(sub, g_idx)]
                    rows, cols = linear_sum_assignment(w, maximize=True)
                    ok = c[rows, cols]
                    matched_p, matched_g = rows[ok], cols[ok]
            pi = sub[matched_p]
            gi = g_idx[matched_g]
            tp_ha = ha[pi, gi]
            keep = tp_ha > min_ha
            n_tp = int(keep.sum())
            n_fp = int(k - len(matched_p))
            sum_ha = float(tp_ha[keep].astype(_F32).sum())
            sum_la = float(aff[pi, gi][keep].sum())
            unmatched = np.ones(len(g_idx), dtype=bool)
            unmatched[matched_g] = False
            rows_sel = counts == k
            for li, lv in enumerate(self._levels):
                n_fn = int((unmatched & (g_level <= lv)).sum())
                acc[li, rows_sel] += (n_tp, n_fp, n_fn, sum_ha, sum_la)

    # ------------------------------------------------------------------ #
    def compute(self) -> Dict[Tuple, Dict[str, object]]:
        """AP, APH, APL and the P/R curve per breakdown shard and level.

        Returns:
            dict: ``(breakdown, waymo_type, range_bin or None, level)`` ->
            ``dict(AP=float, APH=float, APL=float, precision=(C,),
            recall=(C,), tp=(C,), fp=(C,), fn=(C,))`` over the C cutoffs.
        """
        out = {}
        mp = self.config.min_precision
        for (b, t, r), acc in self._acc.items():
            for li, lv in enumerate(self._levels):
                tp, fp, fn, s_ha, s_la = (acc[li, :, i] for i in range(5))
                tp_fp = tp + fp
                tp_fn = tp + fn
                with np.errstate(divide='ignore', invalid='ignore'):
                    prec = np.where(tp_fp > 0, tp / tp_fp, 0.0)
                    prec_ha = np.where(tp_fp > 0, s_ha / tp_fp, 0.0)
                    prec_la = np.where(tp_fp > 0, s_la / tp_fp, 0.0)
                    rec = np.where(tp_fn > 0, tp / tp_fn, 0.0)
                rec = rec.astype(_F32)
                prec, prec_ha, prec_la = (
                    np.where(x.astype(_F32) < mp, 0.0, x).astype(_F32)
                    for x in (prec, prec_ha, prec_la))
                zero = rec == 0.0
                prec[zero] = 1.0
                prec_ha[zero] = 1.0
                prec_la[zero] = 1.0
                delta = self.config.desired_recall_delta
                out[(b, t, r, lv)] = dict(
                    AP=mean_average_precision(prec, rec, delta),
                    APH=mean_average_precision(prec_ha, rec, delta),
                    APL=mean_average_precision(prec_la, rec, delta),
                    precision=prec,
                    recall=rec,
                    tp=tp.copy(),
                    fp=fp.copy(),
                    fn=fn.copy())
        return out


def _check_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 7)
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise ValueError(f'{name} must have shape (K, 7) (cx, cy, cz, l, w, '
                         f'h, heading), got {arr.shape}')
    if not np.isfinite(arr).all():
        raise ValueError(f'{name} contains NaN or inf')
    return arr


def evaluate_waymo(frames: Sequence[WaymoFrame],
                   config: Optional[WaymoEvalConfig] = None
                   ) -> Dict[Tuple, Dict[str, object]]:
    """Evaluates frames in one go (see :class:`WaymoDetectionEvaluator`).

    Args:
        frames (Sequence[WaymoFrame]): All frames.
        config (WaymoEvalConfig, optional): Defaults to
            :func:`waymo_3d_config`.

    Returns:
        dict: As :meth:`WaymoDetectionEvaluator.compute`.
    """
    ev = WaymoDetectionEvaluator(config or waymo_3d_config())
    for f in frames:
        ev.add_frame(f)
    return ev.compute()
