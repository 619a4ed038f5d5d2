"""ddml's numpy Waymo metric against Waymo's own ``detection_metrics`` op.

The op lives in a separate virtual environment (TensorFlow 2.13 +
waymo-open-dataset-tf-2-12-0 1.6.7) built by ``tools/setup_waymo_oracle.sh``
(``make waymo-oracle``); this test writes the cases to a JSON file, runs
``tools/waymo_oracle_eval.py`` with that environment's python, and requires
every AP / APH / APL (3D and LET, per object type and per range bin, LEVEL_1
and LEVEL_2) to agree within 1e-3.  It is skipped, with the reason, when the
environment is absent.
"""
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from ddml.evaluation.waymo_ap import (LETConfig, WaymoDetectionEvaluator,
                                      WaymoEvalConfig, WaymoFrame,
                                      difficulty_from_num_points)

REPO = Path(__file__).resolve().parents[2]
ORACLE_VENV = Path(
    os.environ.get('DDML_WAYMO_ORACLE_VENV',
                   Path.home() / '.cache' / 'ddml' / 'waymo-oracle-venv'))
TOL = 1e-3

CFG_3D = dict(
    iou_thresholds=[0.7, 0.5, 0.5, 0.5],
    levels=[1, 2],
    breakdowns=['OBJECT_TYPE', 'RANGE'])
LET = dict(
    longitudinal_tolerance_percentage=0.1,
    min_longitudinal_tolerance_meter=0.5,
    sensor_location=[1.43, 0.0, 2.18])
CFG_LET = dict(
    iou_thresholds=[0.5, 0.3, 0.3, 0.3],
    levels=[1, 2],
    breakdowns=['OBJECT_TYPE', 'RANGE'],
    let=LET)
# Typical (length, width, height) per Waymo type.
SIZES = {1: (4.5, 2.0, 1.6), 2: (0.9, 0.9, 1.8), 3: (0.6, 0.2, 0.8),
         4: (1.8, 0.8, 1.7)}


def _f32(x) -> list:
    return np.asarray(x, np.float32).astype(float).tolist()


def _frame(pred_boxes, pred_scores, pred_types, gt_boxes, gt_types,
           gt_num_points) -> dict:
    return dict(
        pred_boxes=_f32(np.reshape(pred_boxes, (-1, 7))),
        pred_scores=_f32(pred_scores),
        pred_types=[int(t) for t in pred_types],
        gt_boxes=_f32(np.reshape(gt_boxes, (-1, 7))),
        gt_types=[int(t) for t in gt_types],
        gt_num_points=[int(n) for n in gt_num_points])


def _random_gt(rng, n, types=(1, 2, 4), max_range=80.0):
    t = rng.choice(types, n)
    r = rng.uniform(2.0, max_range, n)
    az = rng.uniform(-np.pi, np.pi, n)
    size = np.array([SIZES[int(k)] for k in t]).reshape(n, 3) * rng.uniform(
        0.8, 1.2, (n, 3))
    z = rng.uniform(-0.5, 1.5, n)
    boxes = np.c_[r * np.cos(az), r * np.sin(az), z, size,
                  rng.uniform(-np.pi, np.pi, n)]
    pts = rng.choice([0, 1, 3, 5, 6, 20, 300], n,
                     p=[.05, .1, .1, .1, .15, .25, .25])
    return boxes, t, pts


def _perturb(rng, boxes, pos_sigma, yaw_sigma, size_sigma, flip_p=0.0):
    out = boxes.copy()
    out[:, :3] += rng.normal(0, pos_sigma, (len(boxes), 3))
    out[:, 3:6] *= np.exp(rng.normal(0, size_sigma, (len(boxes), 3)))
    out[:, 6] += rng.normal(0, yaw_sigma, len(boxes))
    flip = rng.random(len(boxes)) < flip_p
    out[flip, 6] += np.pi
    return out


def _random_frame(rng, n_gt, recall=0.8, n_fp=3, pos_sigma=0.2,
                  yaw_sigma=0.2, size_sigma=0.05, flip_p=0.1, tie=False,
                  types=(1, 2, 4), max_range=80.0):
    gb, gt, gp = _random_gt(rng, n_gt, types, max_range)
    hit = rng.random(n_gt) < recall
    pb = _perturb(rng, gb[hit], pos_sigma, yaw_sigma, size_sigma, flip_p)
    pt = gt[hit].copy()
    # Occasional wrong class.
    wrong = rng.random(len(pt)) < 0.05
    pt[wrong] = rng.choice(types, int(wrong.sum()))
    fb, ft, _ = _random_gt(rng, n_fp, types, max_range)
    pb = np.concatenate([pb, fb])
    pt = np.concatenate([pt, ft])
    scores = rng.random(len(pb))
    if tie:
        scores = np.round(scores * 5) / 5
    return _frame(pb, scores, pt, gb, gt, gp)


def _shift_for_iou(length: float, iou: float) -> float:
    """Shift along the length axis giving ``iou`` for two equal boxes."""
    return length * (1 - iou) / (1 + iou)


def build_cases() -> List[dict]:
    """Hand-made and random cases, each a list of frames plus a config."""
    cases = []
    g = np.array([[12.0, 3.0, 0.8, 4.5, 2.0, 1.6, 0.4]])

    def along(box, d):
        b = box.copy()
        b[:, 0] += d * np.cos(b[:, 6])
        b[:, 1] += d * np.sin(b[:, 6])
        return b

    def add(name, frames, cfg=CFG_3D):
        cases.append(dict(name=name, config=cfg, frames=frames))

    add('identical', [_frame(g, [0.9], [1], g, [1], [100])])
    add('shift_0.65', [_frame(along(g, .65), [0.9], [1], g, [1], [100])])
    add('shift_0.75', [_frame(along(g, .75), [0.9], [1], g, [1], [100])])
    flipped = g.copy()
    flipped[:, 6] += np.pi
    add('heading_flipped', [_frame(flipped, [0.9], [1], g, [1], [100])])
    add('empty_all', [_frame(np.zeros((0, 7)), [], [], np.zeros((0, 7)), [],
                             [])] * 3)
    add('gt_only', [_frame(np.zeros((0, 7)), [], [], g, [1], [100])])
    add('pred_only', [_frame(g, [0.5], [1], np.zeros((0, 7)), [], [])])
    add('zero_and_few_points', [
        _frame(np.r_[g, along(g, 10.0)], [0.8, 0.6], [1, 1],
               np.r_[g, along(g, 10.0), along(g, 20.0)], [1, 1, 1],
               [0, 3, 50])
    ])
    # Near-threshold IoUs for each class (+-0.003 around the threshold).
    for t, thr in ((1, 0.7), (2, 0.5), (4, 0.5)):
        l, w, h = SIZES[t]
        base = np.array([[20.0, -4.0, 0.5, l, w, h, 1.1]])
        frames = []
        for k, d_iou in enumerate((-0.003, 0.003, -0.02, 0.02)):
            pd = along(base, _shift_for_iou(l, thr + d_iou))
            frames.append(_frame(pd, [0.3 + 0.1 * k], [t], base, [t], [40]))
        add(f'near_threshold_type{t}', frames)
    # Range-bin boundaries: predictions and GTs on both sides of 30 / 50 m.
    frames = []
    for r in (29.7, 30.3, 49.7, 50.3):
        b = np.array([[r, 0.0, 0.0, 4.5, 2.0, 1.6, 0.0]])
        frames.append(_frame(along(b, 0.6), [0.7], [1], b, [1], [30]))
    add('range_boundaries', frames)
    # Random scenes with several noise levels, ties and many boxes.
    for seed in range(24):
        rng = np.random.default_rng(seed)
        n_frames = int(rng.integers(1, 8))
        kw = dict(
            pos_sigma=float(rng.choice([0.05, 0.2, 0.5])),
            yaw_sigma=float(rng.choice([0.05, 0.3, 1.0])),
            tie=bool(seed % 3 == 0))
        frames = [
            _random_frame(rng, int(rng.integers(0, 12)), **kw)
            for _ in range(n_frames)
        ]
        add(f'random_{seed}', frames)
    rng = np.random.default_rng(100)
    add('many_boxes', [
        _random_frame(rng, 150, n_fp=60, pos_sigma=0.15, max_range=60.0)
        for _ in range(2)
    ])
    add('all_types_with_sign', [
        _random_frame(rng, 15, types=(1, 2, 3, 4), pos_sigma=0.1)
        for _ in range(4)
    ])
    # LET: shifts along the line of sight from the sensor by fractions of
    # the tolerance, plus lateral errors and random scenes.
    s = np.array(LET['sensor_location'])
    frames = []
    for k, frac in enumerate((0.0, 0.3, 0.7, 0.95, 1.2, -0.5, -1.1)):
        gtb = np.array([[8.0 + 7 * k, -3.0 + k, 0.9, 4.5, 2.0, 1.6, 0.2]])
        ray = gtb[0, :3] - s
        rng_gt = np.linalg.norm(ray)
        tol = max(0.1 * rng_gt, 0.5)
        pd = gtb.copy()
        pd[0, :3] = s + ray * (1 + frac * tol / rng_gt)
        frames.append(_frame(pd, [0.9 - 0.1 * k], [1], gtb, [1], [50]))
    add('let_longitudinal', frames, CFG_LET)
    for seed in range(8):
        rng = np.random.default_rng(1000 + seed)
        frames = [
            _random_frame(rng, int(rng.integers(1, 10)),
                          pos_sigma=float(rng.choice([0.3, 1.0, 2.5])),
                          tie=bool(seed % 2))
            for _ in range(int(rng.integers(1, 5)))
        ]
        add(f'let_random_{seed}', frames, CFG_LET)
    add('let_identical', [_frame(g, [0.9], [1], g, [1], [100])], CFG_LET)
    add('let_empty', [_frame(np.zeros((0, 7)), [], [], g, [1], [3])], CFG_LET)
    return cases


def _our_config(spec: dict) -> WaymoEvalConfig:
    let = spec.get('let')
    return WaymoEvalConfig(
        iou_thresholds={
            i + 1: v
            for i, v in enumerate(spec['iou_thresholds'])
        },
        let=LETConfig(
            longitudinal_tolerance_percentage=let[
                'longitudinal_tolerance_percentage'],
            min_longitudinal_tolerance_meter=let[
                'min_longitudinal_tolerance_meter'],
            sensor_location=tuple(let['sensor_location']))
        if let else None,
        difficulty_levels=tuple(spec['levels']),
        breakdowns=tuple(spec['breakdowns']))


def ours(case: dict) -> Dict[Tuple[str, int, int], Dict[str, float]]:
    """Our figures keyed like the op's breakdown (name, shard, level)."""
    ev = WaymoDetectionEvaluator(_our_config(case['config']))
    for fr in case['frames']:
        keep, level = difficulty_from_num_points(fr['gt_num_points'])
        gb = np.asarray(fr['gt_boxes'], np.float64).reshape(-1, 7)
        ev.add_frame(
            WaymoFrame(
                pred_boxes=np.asarray(fr['pred_boxes']).reshape(-1, 7),
                pred_scores=np.asarray(fr['pred_scores']),
                pred_types=np.asarray(fr['pred_types']),
                gt_boxes=gb[keep],
                gt_types=np.asarray(fr['gt_types'], np.int64)[keep],
                gt_difficulty=level[keep]))
    out = {}
    for (b, t, r, lv), m in ev.compute().items():
        shard = t - 1 if b == 'OBJECT_TYPE' else 3 * (t - 1) + r
        out[(b, shard, lv)] = dict(AP=m['AP'], APH=m['APH'], APL=m['APL'])
    return out


def _oracle_python() -> Path:
    py = ORACLE_VENV / 'bin' / 'python'
    if not py.exists():
        pytest.skip(f'Waymo oracle environment not found at {ORACLE_VENV} '
                    '(build it with tools/setup_waymo_oracle.sh, i.e. '
                    '`make waymo-oracle`, or set DDML_WAYMO_ORACLE_VENV)')
    return py


@pytest.mark.oracle
def test_numpy_metric_matches_waymo_op(tmp_path):
    py = _oracle_python()
    cases = build_cases()
    case_file = tmp_path / 'cases.json'
    result_file = tmp_path / 'oracle.json'
    case_file.write_text(json.dumps(dict(cases=cases)))
    proc = subprocess.run(
        [str(py), str(REPO / 'tools' / 'waymo_oracle_eval.py'),
         str(case_file), str(result_file)],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f'oracle failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}')
    oracle = json.loads(result_file.read_text())
    mismatches = []
    n_values = 0
    n_nontrivial = 0
    for case in cases:
        mine = ours(case)
        rows = oracle['results'][case['name']]
        assert len(rows) == len(mine), case['name']
        for row in rows:
            key = (row['breakdown'], row['shard'], row['level'])
            assert key in mine, (case['name'], key)
            for name in ('AP', 'APH', 'APL'):
                n_values += 1
                n_nontrivial += 0.0 < row[name] < 1.0
                if not math.isclose(mine[key][name], row[name],
                                    abs_tol=TOL):
                    mismatches.append(
                        f'{case["name"]} {key} {name}: ours '
                        f'{mine[key][name]:.6f} waymo {row[name]:.6f}')
    print(f'compared {n_values} figures ({n_nontrivial} strictly between 0 '
          f'and 1) over {len(cases)} cases with Waymo\'s op '
          f'{oracle["versions"]}')
    assert not mismatches, '\n'.join(mismatches[:50])
    # The cases must exercise the metric, not only produce 0s and 1s.
    assert n_nontrivial > 200
