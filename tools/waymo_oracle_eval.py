#!/usr/bin/env python
"""Evaluate detection cases with Waymo's own metric op (the "oracle").

Runs in the oracle environment built by ``tools/setup_waymo_oracle.sh``
(TensorFlow + ``waymo-open-dataset-tf-2-12-0``), NOT in the main one:

    $DDML_WAYMO_ORACLE_VENV/bin/python tools/waymo_oracle_eval.py \
        cases.json results.json

``cases.json`` holds ``{"cases": [case, ...]}``; a case is::

    {"name": str,
     "config": {"iou_thresholds": [vehicle, pedestrian, sign, cyclist],
                "levels": [1, 2],
                "breakdowns": ["OBJECT_TYPE", "RANGE"],
                "score_cutoffs": [...],             # optional, float32
                "let": null | {"longitudinal_tolerance_percentage": 0.1,
                               "min_longitudinal_tolerance_meter": 0.5,
                               "sensor_location": [x, y, z]}},
     "frames": [{"pred_boxes": [[cx, cy, cz, l, w, h, heading], ...],
                 "pred_scores": [...], "pred_types": [...],
                 "gt_boxes": [...], "gt_types": [...],
                 "gt_num_points": [...]}, ...]}

Ground truths get their difficulty as the devkit's command-line tools give
it (``compute_detection_metrics_main.cc``): no point -> dropped, <= 5
points -> LEVEL_2, else LEVEL_1.  The op is
``waymo_open_dataset.metrics.ops.py_metrics_ops.detection_metrics``.

``results.json`` gets ``{"versions": {...}, "results": {name: [{"breakdown":
"OBJECT_TYPE", "shard": int, "level": int, "AP": float, "APH": float,
"APL": float}, ...]}}``.
"""
import importlib.util
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (ddml is not installed in the oracle's env)

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
#: What each case must hold (its frames are checked by the op itself).
CASE_KEYS = ('name', 'config', 'frames')


def _config(spec):
    from waymo_open_dataset import label_pb2
    from waymo_open_dataset.protos import breakdown_pb2, metrics_pb2
    config = metrics_pb2.Config()
    for name in spec.get('breakdowns', ['OBJECT_TYPE', 'RANGE']):
        config.breakdown_generator_ids.append(
            breakdown_pb2.Breakdown.GeneratorId.Value(name))
        d = config.difficulties.add()
        for lv in spec.get('levels', [1, 2]):
            d.levels.append(lv)
    config.matcher_type = metrics_pb2.MatcherProto.TYPE_HUNGARIAN
    config.iou_thresholds.append(0.0)
    for thr in spec['iou_thresholds']:
        config.iou_thresholds.append(thr)
    config.box_type = label_pb2.Label.Box.TYPE_3D
    cutoffs = spec.get('score_cutoffs')
    if cutoffs is None:
        cutoffs = [i * 0.01 for i in range(100)] + [1.0]
    for c in cutoffs:
        config.score_cutoffs.append(c)
    let = spec.get('let')
    if let:
        lc = config.let_metric_config
        lc.enabled = True
        lc.align_type = (metrics_pb2.Config.LongitudinalErrorTolerantConfig.
                         TYPE_RANGE_ALIGNED)
        lc.longitudinal_tolerance_percentage = let[
            'longitudinal_tolerance_percentage']
        lc.min_longitudinal_tolerance_meter = let[
            'min_longitudinal_tolerance_meter']
        x, y, z = let['sensor_location']
        lc.sensor_location.x = x
        lc.sensor_location.y = y
        lc.sensor_location.z = z
    return config


def _evaluate(case):
    import numpy as np
    import tensorflow as tf
    from waymo_open_dataset.metrics.ops import py_metrics_ops
    from waymo_open_dataset.protos import breakdown_pb2

    config = _config(case['config'])
    pb, ps, pt, pf, gb, gt, gf, gd = ([] for _ in range(8))
    for fid, fr in enumerate(case['frames']):
        n = len(fr['pred_scores'])
        pb.extend(fr['pred_boxes'])
        ps.extend(fr['pred_scores'])
        pt.extend(fr['pred_types'])
        pf.extend([fid] * n)
        for box, typ, pts in zip(fr['gt_boxes'], fr['gt_types'],
                                 fr['gt_num_points']):
            if pts <= 0:
                continue
            gb.append(box)
            gt.append(typ)
            gf.append(fid)
            gd.append(2 if pts <= 5 else 1)

    def boxes(b):
        return tf.constant(np.asarray(b, np.float32).reshape(-1, 7))

    out = py_metrics_ops.detection_metrics(
        prediction_bbox=boxes(pb),
        prediction_type=tf.constant(np.asarray(pt, np.uint8)),
        prediction_score=tf.constant(np.asarray(ps, np.float32)),
        prediction_frame_id=tf.constant(np.asarray(pf, np.int64)),
        prediction_overlap_nlz=tf.constant(np.zeros(len(ps), bool)),
        ground_truth_bbox=boxes(gb),
        ground_truth_type=tf.constant(np.asarray(gt, np.uint8)),
        ground_truth_frame_id=tf.constant(np.asarray(gf, np.int64)),
        ground_truth_difficulty=tf.constant(np.asarray(gd, np.uint8)),
        config=config.SerializeToString())
    ap, aph, apl, _, _, _, breakdown = (x.numpy() for x in out)
    rows = []
    for i in range(len(ap)):
        gen, shard, level = (int(v) for v in breakdown[i])
        rows.append(
            dict(
                breakdown=breakdown_pb2.Breakdown.GeneratorId.Name(gen),
                shard=shard,
                level=level,
                AP=float(ap[i]),
                APH=float(aph[i]),
                APL=float(apl[i])))
    return rows


def parse_args(argv=None):
    parser = cli.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='the formats of both files: see the module docstring')
    parser.add_argument('cases', help='cases.json ({"cases": [case, ...]})')
    parser.add_argument('results', help='results.json to write')
    return parser.parse_args(argv)


def read_cases(path: str) -> list:
    """The cases of ``path``, each checked for :data:`CASE_KEYS` and its
    config's ``iou_thresholds``: raises
    :class:`ddml.engine.cli.UsageError`, one line naming the case and the
    key."""
    cli.check_file(path, 'cases', 'give the cases JSON file that the test '
                   'wrote ({"cases": [...]})')
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as err:
        raise cli.BadValueError(f'cases {path}: not valid JSON ({err})')
    cases = data.get('cases') if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise cli.BadValueError(
            f'cases {path}: no "cases" list at the top; write '
            '{"cases": [case, ...]} (see this tool\'s docstring)')
    for i, case in enumerate(cases):
        missing = [k for k in CASE_KEYS if not isinstance(case, dict)
                   or k not in case]
        if not missing and 'iou_thresholds' not in case['config']:
            missing = ['config.iou_thresholds']
        if missing:
            raise cli.BadValueError(
                f'cases {path}: case {i} has no {missing[0]!r}; each case '
                'needs name, config (with iou_thresholds) and frames')
    return cases


def main(argv=None) -> int:
    args = parse_args(argv)
    cases = read_cases(args.cases)
    cli.check_out_file(args.results, 'results', ('.json', ))
    if importlib.util.find_spec('waymo_open_dataset') is None:
        raise cli.SetupError(
            'the Waymo devkit (waymo_open_dataset) is not installed in this '
            'python; run this tool with the oracle environment\'s: '
            '$DDML_WAYMO_ORACLE_VENV/bin/python (built by make waymo-oracle)')
    from importlib.metadata import version
    results = {}
    for case in cases:
        results[case['name']] = _evaluate(case)
    with open(args.results, 'w') as f:
        json.dump(
            dict(
                versions=dict(
                    tensorflow=version('tensorflow'),
                    waymo_open_dataset=version(
                        'waymo-open-dataset-tf-2-12-0')),
                results=results), f)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
