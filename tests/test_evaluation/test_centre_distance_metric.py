"""CentreDistanceMetric on hand-built KITTI-format frames.

Every case writes a real mmdet3d v2 info file to ``tmp_path`` and feeds real
``Det3DDataSample`` / ``InstanceData`` / ``CameraInstance3DBoxes``
predictions; the expected values are worked out by hand in the comments
(nuScenes AP: precision interpolated at recalls 0, 0.01, ..., 1, the 90
samples above recall 0.1 kept, ``max(p - 0.1, 0) / 0.9`` averaged).
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest
import torch
from mmengine.fileio import dump
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmdet3d.structures import (CameraInstance3DBoxes, Det3DDataSample,
                                LiDARInstance3DBoxes, points_cam2img)

from ddml.evaluation.centre_distance_metric import (CentreDistanceMetric,
                                                    centre_distance_ap,
                                                    greedy_centre_match)

#: mmdet3d's KITTI info categories (label ids of ``bbox_label_3d``).
CATEGORIES = {
    'Pedestrian': 0, 'Cyclist': 1, 'Car': 2, 'Van': 3, 'Truck': 4,
    'Person_sitting': 5, 'Tram': 6, 'Misc': 7, 'DontCare': -1
}
CLASSES3 = ['Pedestrian', 'Cyclist', 'Car']
THRS = ('0.5', '1.0', '2.0', '4.0')
#: KITTI's P2 of the 2011_09_26 drive (focal 721.5 px), 1242 x 375 image.
P2 = [[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791],
      [0.0, 0.0, 1.0, 0.002745884], [0.0, 0.0, 0.0, 1.0]]
LIDAR2CAM = [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08],
             [1.0, 0.0, 0.0, -0.27], [0.0, 0.0, 0.0, 1.0]]
WIDTH, HEIGHT = 1242, 375
DIMS = {'Car': (3.9, 1.56, 1.6), 'Pedestrian': (0.8, 1.75, 0.6),
        'Cyclist': (1.76, 1.7, 0.6), 'Van': (5.0, 2.2, 1.9),
        'DontCare': (1.0, 1.0, 1.0)}


# ------------------------------------------------------------ helpers ---- #
def box(name: str, x: float, z: float, y: float = 1.65,
        ry: float = 0.0) -> List[float]:
    """KITTI camera box ``[x, y, z, l, h, w, ry]`` (bottom centre)."""
    return [x, y, z, *DIMS[name], ry]


def image_box(b: Sequence[float]) -> List[float]:
    """2D box of the projected corners, clipped to the image."""
    corners = CameraInstance3DBoxes(torch.tensor([b])).corners
    uv = points_cam2img(corners, torch.tensor(P2))[0]
    lo, hi = uv.min(0)[0], uv.max(0)[0]
    return [max(float(lo[0]), 0.0), max(float(lo[1]), 0.0),
            min(float(hi[0]), WIDTH - 1.0), min(float(hi[1]), HEIGHT - 1.0)]


def instance(name: str, b: Sequence[float]) -> dict:
    """One ``instances`` entry as mmdet3d's KITTI converter writes it."""
    label = CATEGORIES[name]
    return dict(
        bbox=image_box(b), bbox_label=label, bbox_3d=list(b),
        bbox_label_3d=label, depth=b[2], num_lidar_pts=50, difficulty=0,
        truncated=0.0, occluded=0, alpha=b[6] - math.atan2(b[0], b[2]),
        score=0.0)


def write_infos(path, frames: Sequence[Sequence[tuple]]) -> str:
    """Info file of frames given as lists of ``(class name, box)``."""
    data_list = []
    for i, objs in enumerate(frames):
        cam2 = dict(img_path=f'{i:06d}.png', height=HEIGHT, width=WIDTH,
                    cam2img=P2, lidar2cam=LIDAR2CAM,
                    lidar2img=(np.array(P2) @ np.array(LIDAR2CAM)).tolist())
        data_list.append(
            dict(sample_idx=i, images=dict(CAM2=cam2),
                 instances=[instance(n, b) for n, b in objs]))
    out = str(path / 'kitti_infos_val.pkl')
    dump(dict(metainfo=dict(categories=CATEGORIES, dataset='kitti'),
              data_list=data_list), out)
    return out


def sample(idx: int, boxes: Sequence[Sequence[float]],
           scores: Sequence[float], labels: Sequence[int],
           with_2d: bool = False) -> Det3DDataSample:
    """A mono3d detector's output for frame ``idx``."""
    ds = Det3DDataSample()
    ds.set_metainfo(dict(sample_idx=idx))
    pred = InstanceData()
    pred.bboxes_3d = CameraInstance3DBoxes(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 7))
    pred.scores_3d = torch.tensor(scores, dtype=torch.float32)
    pred.labels_3d = torch.tensor(labels, dtype=torch.long)
    ds.pred_instances_3d = pred
    if with_2d:
        pred2d = InstanceData()
        pred2d.bboxes = torch.tensor([image_box(b) for b in boxes]).reshape(
            -1, 4)
        pred2d.scores = pred.scores_3d.clone()
        pred2d.labels = pred.labels_3d.clone()
        ds.pred_instances = pred2d
    return ds


def evaluate(ann_file: str, samples: Sequence[Det3DDataSample],
             classes: Sequence[str] = ('Car', ),
             **kwargs) -> Dict[str, float]:
    """Runs the metric as mmengine's Evaluator does (dicts), unprefixed."""
    metric = CentreDistanceMetric(ann_file=ann_file, **kwargs)
    metric.dataset_meta = dict(classes=list(classes))
    metric.process({}, [s.to_dict() for s in samples])
    out = metric.evaluate(len(samples))
    assert all(k.startswith('CentreDist/') for k in out)
    return {k[len('CentreDist/'):]: v for k, v in out.items()}


def perfect(frames, classes: Sequence[str],
            scores: Optional[Sequence[float]] = None):
    """Predictions equal to the ground truth of ``classes``."""
    samples, k = [], 0
    for i, objs in enumerate(frames):
        kept = [(n, b) for n, b in objs if n in classes]
        s = scores[k:k + len(kept)] if scores else [0.9] * len(kept)
        k += len(kept)
        samples.append(
            sample(i, [b for _, b in kept], s,
                   [list(classes).index(n) for n, _ in kept]))
    return samples


def assert_ap(out, name, expected: Sequence[float]):
    for t, e in zip(THRS, expected, strict=True):
        assert out[f'{name}_AP_{t}m'] == pytest.approx(e, abs=1e-9), t


CARS = [[('Car', box('Car', -3.0, 10.0)), ('Car', box('Car', 2.0, 18.0))],
        [('Car', box('Car', 1.0, 30.0)), ('Car', box('Car', -4.0, 45.0))]]


# -------------------------------------------------------------- cases ---- #
def test_perfect_predictions_give_ap_1(tmp_path):
    frames = [[('Car', box('Car', -3.0, 10.0)),
               ('Car', box('Car', 2.0, 30.0)),
               ('Pedestrian', box('Pedestrian', 1.5, 15.0)),
               ('DontCare', box('DontCare', 0.0, 12.0))],
              [('Car', box('Car', 0.5, 50.0, ry=1.2)),
               ('Cyclist', box('Cyclist', -2.0, 25.0, ry=-0.4)),
               ('Van', box('Van', 4.0, 20.0))]]
    ann = write_infos(tmp_path, frames)
    out = evaluate(ann, perfect(frames, CLASSES3, [0.9, 0.8, 0.7, 0.6, 0.5]),
                   classes=CLASSES3)
    for name in CLASSES3:
        assert_ap(out, name, [1.0] * 4)
        assert out[f'{name}_mAP'] == pytest.approx(1.0)
    assert out['mAP'] == pytest.approx(1.0)
    assert out['mAP_2.0m'] == pytest.approx(1.0)
    # Car 10 + Pedestrian 15 | Car 30 + Cyclist 25 | Car 50; DontCare and
    # the Van (not a class) are neither counted nor missed.
    counts = {'0-20m': 2, '20-40m': 2, '40m+': 1, 'all': 5}
    for bname, n in counts.items():
        assert out[f'depth_count_{bname}'] == n
        assert out[f'depth_abs_err_{bname}'] == pytest.approx(0.0, abs=1e-5)
        assert out[f'depth_abs_err_median_{bname}'] == pytest.approx(
            0.0, abs=1e-5)


@pytest.mark.parametrize('axis', [0, 2])  # camera x (lateral), z (depth)
def test_shift_of_1_5_m_lands_between_1_and_2_m(tmp_path, axis):
    ann = write_infos(tmp_path, CARS)
    samples = []
    for i, objs in enumerate(CARS):
        boxes = [list(b) for _, b in objs]
        for b in boxes:
            b[axis] += 1.5
        samples.append(sample(i, boxes, [0.9, 0.8], [0, 0]))
    out = evaluate(ann, samples)
    assert_ap(out, 'Car', [0.0, 0.0, 1.0, 1.0])
    assert out['Car_mAP'] == pytest.approx(0.5)
    assert out['mAP'] == pytest.approx(0.5)
    # Matched at 2 m (the default depth_match_thr): the depth error is the
    # shift along z and nothing along x.
    err = 1.5 if axis == 2 else 0.0
    for bname, n in {'0-20m': 2, '20-40m': 1, '40m+': 1, 'all': 4}.items():
        assert out[f'depth_count_{bname}'] == n
        assert out[f'depth_abs_err_{bname}'] == pytest.approx(err, abs=1e-5)


def test_height_is_not_part_of_the_ground_plane(tmp_path):
    """Camera y points down: a 3 m vertical error does not move the centre
    on the x-z plane."""
    ann = write_infos(tmp_path, CARS)
    samples = []
    for i, objs in enumerate(CARS):
        boxes = [list(b) for _, b in objs]
        for b in boxes:
            b[1] -= 3.0
        samples.append(sample(i, boxes, [0.9, 0.8], [0, 0]))
    out = evaluate(ann, samples)
    assert_ap(out, 'Car', [1.0] * 4)
    assert out['depth_abs_err_all'] == pytest.approx(0.0, abs=1e-5)


def test_depth_error_is_binned_by_ground_truth_depth(tmp_path):
    frames = [[('Car', box('Car', 0.0, 10.0)), ('Car', box('Car', 3.0, 15.0)),
               ('Car', box('Car', -3.0, 19.5))],
              [('Car', box('Car', 0.0, 30.0)), ('Car', box('Car', 2.0, 45.0))]]
    shifts = [[0.5, -0.3, 1.0], [-1.5, 1.0]]  # along z (m)
    ann = write_infos(tmp_path, frames)
    samples = []
    for i, (objs, dz) in enumerate(zip(frames, shifts, strict=True)):
        boxes = [list(b) for _, b in objs]
        for b, d in zip(boxes, dz, strict=True):
            b[2] += d
        samples.append(sample(i, boxes, [0.5] * len(boxes), [0] * len(dz)))
    out = evaluate(ann, samples)
    # 19.5 m + 1.0 m: predicted at 20.5 m, binned by its GT depth (0-20 m).
    assert out['depth_count_0-20m'] == 3
    assert out['depth_abs_err_0-20m'] == pytest.approx(0.6, abs=1e-5)
    assert out['depth_abs_err_median_0-20m'] == pytest.approx(0.5, abs=1e-5)
    assert out['depth_count_20-40m'] == 1
    assert out['depth_abs_err_20-40m'] == pytest.approx(1.5, abs=1e-5)
    assert out['depth_count_40m+'] == 1
    assert out['depth_abs_err_40m+'] == pytest.approx(1.0, abs=1e-5)
    assert out['depth_count_all'] == 5
    assert out['depth_abs_err_all'] == pytest.approx(4.3 / 5, abs=1e-5)
    assert out['depth_abs_err_median_all'] == pytest.approx(1.0, abs=1e-5)

    # Own bins and a tighter match: the 1.5 m error is no match at 1.2 m.
    out = evaluate(ann, samples, depth_match_thr=1.2,
                   depth_bins=(0.0, 25.0, float('inf')),
                   depth_per_class=True)
    assert out['depth_count_0-25m'] == 3
    assert out['depth_count_25m+'] == 1
    assert out['depth_abs_err_25m+'] == pytest.approx(1.0, abs=1e-5)
    assert out['Car_depth_count_all'] == 4
    assert 'depth_count_40m+' not in out


def test_false_positives_lower_precision_as_computed_by_hand(tmp_path):
    """One GT, one exact prediction and one 10 m away.

    FP first: precision 0 at recall 0, 1/2 at recall 1, interpolated
    p(r) = r/2; AP = sum_{i=21}^{100} (i/200 - 0.1) / 90 / 0.9 = 0.2.
    TP first: p = 1 for recall < 1 and 1/2 at recall 1 (the last point);
    AP = (89 * 0.9 + 0.4) / 90 / 0.9 = 80.5 / 81.
    """
    frames = [[('Car', box('Car', 0.0, 10.0))]]
    ann = write_infos(tmp_path, frames)
    boxes = [box('Car', 0.0, 10.0), box('Car', 5.0, 19.0)]
    out = evaluate(ann, [sample(0, boxes, [0.3, 0.7], [0, 0])])
    assert_ap(out, 'Car', [0.2] * 4)
    out = evaluate(ann, [sample(0, boxes, [0.7, 0.3], [0, 0])])
    assert_ap(out, 'Car', [80.5 / 81] * 4)
    # Without the false positive: 1.
    out = evaluate(ann, [sample(0, boxes[:1], [0.3], [0])])
    assert_ap(out, 'Car', [1.0] * 4)


def test_score_order_decides_which_prediction_matches(tmp_path):
    """Two predictions near one GT (0.3 m and 1.5 m off): the higher score
    takes it; the other is a false positive at every threshold."""
    frames = [[('Car', box('Car', 0.0, 20.0))]]
    ann = write_infos(tmp_path, frames)
    near, far = box('Car', 0.3, 20.0), box('Car', 1.5, 20.0)
    out = evaluate(ann, [sample(0, [near, far], [0.9, 0.5], [0, 0])])
    # near matches from 0.5 m on: TP then FP -> 80.5 / 81.
    assert_ap(out, 'Car', [80.5 / 81] * 4)
    assert out['depth_abs_err_all'] == pytest.approx(0.0, abs=1e-5)
    out = evaluate(ann, [sample(0, [near, far], [0.5, 0.9], [0, 0])])
    # far takes the GT at 2 and 4 m (FP after TP: 80.5 / 81); below 1.5 m
    # it cannot, near then matches after it (FP then TP: 0.2).
    assert_ap(out, 'Car', [0.2, 0.2, 80.5 / 81, 80.5 / 81])


def test_class_without_ground_truth_is_nan_and_left_out(tmp_path):
    ann = write_infos(tmp_path, CARS)
    samples = perfect(CARS, CLASSES3)
    # and a Pedestrian prediction where there is no Pedestrian at all
    boxes = [b for _, b in CARS[0]] + [box('Pedestrian', 0.0, 8.0)]
    samples[0] = sample(0, boxes, [0.9, 0.8, 0.99], [2, 2, 0])
    out = evaluate(ann, samples, classes=CLASSES3)
    for name in ('Pedestrian', 'Cyclist'):
        for t in THRS:
            assert math.isnan(out[f'{name}_AP_{t}m'])
        assert math.isnan(out[f'{name}_mAP'])
    assert_ap(out, 'Car', [1.0] * 4)
    assert out['mAP'] == pytest.approx(1.0)
    assert out['mAP_0.5m'] == pytest.approx(1.0)


def test_empty_predictions(tmp_path):
    ann = write_infos(tmp_path, CARS)
    out = evaluate(ann, [sample(i, [], [], []) for i in range(2)])
    assert_ap(out, 'Car', [0.0] * 4)
    assert out['mAP'] == 0.0
    assert out['depth_count_all'] == 0
    assert math.isnan(out['depth_abs_err_all'])
    assert math.isnan(out['depth_abs_err_median_0-20m'])
    # no ground truth and no prediction anywhere: nothing to average
    ann = write_infos(tmp_path, [[], []])
    out = evaluate(ann, [sample(i, [], [], []) for i in range(2)])
    assert math.isnan(out['Car_mAP']) and math.isnan(out['mAP'])


def test_labels_follow_dataset_classes(tmp_path):
    """Info label 2 is Car; with classes ['Car'] predictions say 0. Other
    classes' ground truth is ignored, not missed."""
    frames = [[('Car', box('Car', 0.0, 10.0)),
               ('Pedestrian', box('Pedestrian', 2.0, 12.0)),
               ('DontCare', box('DontCare', -2.0, 14.0))]]
    ann = write_infos(tmp_path, frames)
    out = evaluate(ann, [sample(0, [box('Car', 0.0, 10.0)], [0.8], [0])])
    assert_ap(out, 'Car', [1.0] * 4)
    assert set(k for k in out if k.endswith('_mAP')) == {'Car_mAP'}
    # a prediction labelled outside the classes is ignored as well
    out = evaluate(ann, [sample(0, [box('Car', 0.0, 10.0)] * 2, [0.8, 0.9],
                                [0, 5])])
    assert_ap(out, 'Car', [1.0] * 4)


def test_only_frames_with_predictions_are_evaluated(tmp_path):
    ann = write_infos(tmp_path, CARS)
    out = evaluate(ann, perfect(CARS, ['Car'])[1:])
    assert_ap(out, 'Car', [1.0] * 4)
    assert out['depth_count_all'] == 2


def test_greedy_matching_takes_nearest_free_ground_truth():
    gt = np.array([[0.0, 0.0], [1.2, 0.0]])
    pred = np.array([[0.7, 0.0], [1.1, 0.0]])
    # 0.7 (score 0.9) is nearer to GT 1 (0.5) than to GT 0 (0.7) and takes
    # it; 1.1 is then 1.1 m from the only free GT.
    np.testing.assert_array_equal(
        greedy_centre_match(pred, np.array([0.9, 0.8]), gt, 2.0), [1, 0])
    np.testing.assert_array_equal(
        greedy_centre_match(pred, np.array([0.9, 0.8]), gt, 1.0), [1, -1])
    # a distance equal to the threshold is no match (strict <)
    np.testing.assert_array_equal(
        greedy_centre_match(np.array([[1.0, 0.0]]), np.array([0.5]),
                            gt[:1], 1.0), [-1])
    assert math.isnan(centre_distance_ap(np.zeros(1), np.ones(1, bool), 0))
    # min_recall=0, min_precision=0: the mean of the 100 samples above 0
    assert centre_distance_ap(
        np.array([0.3, 0.7]), np.array([True, False]), 1, 0.0,
        0.0) == pytest.approx(sum(i / 200 for i in range(1, 101)) / 100)


def test_clear_errors(tmp_path):
    ann = write_infos(tmp_path, CARS)
    metric = CentreDistanceMetric(ann_file=ann)
    metric.process({}, [sample(5, [], [], []).to_dict()])
    with pytest.raises(ValueError, match='dataset_meta'):
        metric.compute_metrics(metric.results)
    metric.dataset_meta = dict(classes=['Car'])
    with pytest.raises(IndexError, match='sample_idx 5'):
        metric.compute_metrics(metric.results)
    lidar = Det3DDataSample(metainfo=dict(sample_idx=0))
    lidar.pred_instances_3d = InstanceData(
        bboxes_3d=LiDARInstance3DBoxes(torch.zeros(1, 7)),
        scores_3d=torch.ones(1), labels_3d=torch.zeros(1, dtype=torch.long))
    with pytest.raises(TypeError, match='CameraInstance3DBoxes'):
        metric.process({}, [lidar.to_dict()])
    with pytest.raises(ValueError, match='depth_bins'):
        CentreDistanceMetric(ann_file=ann, depth_bins=(0.0, 20.0, 10.0))
    with pytest.raises(ValueError, match='dist_thrs'):
        CentreDistanceMetric(ann_file=ann, dist_thrs=(0.0, 1.0))


# ----------------------------------------------------- as configs use it -- #
def test_build_from_config_after_import_ddml(tmp_path):
    from mmdet3d.registry import METRICS

    import ddml  # noqa: F401
    ann = write_infos(tmp_path, CARS)
    metric = METRICS.build(
        dict(type='CentreDistanceMetric', ann_file=ann, dist_thrs=[1, 4],
             depth_bins=[0, 30, float('inf')]))
    assert isinstance(metric, CentreDistanceMetric)
    metric.dataset_meta = dict(classes=['Car'])
    for s in perfect(CARS, ['Car']):  # Det3DDataSample objects work too
        metric.process({}, [s])
    out = metric.evaluate(2)
    assert out['CentreDist/Car_AP_1.0m'] == pytest.approx(1.0)
    assert out['CentreDist/Car_AP_4.0m'] == pytest.approx(1.0)
    assert 'CentreDist/Car_AP_2.0m' not in out
    assert out['CentreDist/depth_count_0-30m'] == 2
    assert out['CentreDist/depth_count_30m+'] == 2


def test_beside_kitti_metric_in_one_evaluator(tmp_path):
    """The same predictions, 1.5 m too deep: KITTI's 3D AP sees nothing, the
    centre-distance AP sees them at 2 m; the 2D boxes are exact, so KITTI's
    2D AP shows both metrics read the same frames.  KITTI's AP40 needs at
    least 40 ground truths to reach 100 (one score threshold per recall
    step), hence 14 frames of 3 cars."""
    from mmengine.evaluator import Evaluator

    import ddml  # noqa: F401  (KITTI's BEV/3D IoU on the CPU)
    frames = [[('Car', box('Car', -3.0 + 0.1 * i, 10.0)),
               ('Car', box('Car', 2.5, 15.0 + 0.2 * i)),
               ('Car', box('Car', 1.0, 20.0 + 0.5 * i, ry=0.3))]
              for i in range(14)]
    ann = write_infos(tmp_path, frames)
    scores = np.random.default_rng(0).permutation(42) / 42 + 0.01
    samples = []
    for i, objs in enumerate(frames):
        boxes = [list(b) for _, b in objs]
        for b in boxes:
            b[2] += 1.5
        s = sample(i, boxes, scores[3 * i:3 * i + 3], [2, 2, 2],
                   with_2d=True)
        s.pred_instances.bboxes = torch.tensor(
            [image_box(b) for _, b in objs])
        samples.append(s)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        evaluator = Evaluator([
            dict(type='KittiMetric', ann_file=ann, metric='bbox'),
            dict(type='CentreDistanceMetric', ann_file=ann)
        ])
    evaluator.dataset_meta = dict(classes=CLASSES3)
    for s in samples:  # KittiMetric keeps one result per process() call
        evaluator.process([s])
    out = evaluator.evaluate(len(samples))
    kitti = 'Kitti metric/pred_instances'
    assert out[f'{kitti}_3d/KITTI/Car_3D_AP40_moderate_loose'] == 0.0
    assert out[f'{kitti}/KITTI/Car_2D_AP40_moderate_strict'] == \
        pytest.approx(100.0)
    assert_ap({k[len('CentreDist/'):]: v for k, v in out.items()
               if k.startswith('CentreDist/')}, 'Car', [0.0, 0.0, 1.0, 1.0])
    assert math.isnan(out['CentreDist/Pedestrian_mAP'])
    # cars at 10 and 15-17.6 m | at 20-26.5 m (20 m belongs to 20-40 m)
    assert out['CentreDist/depth_count_0-20m'] == 28
    assert out['CentreDist/depth_count_20-40m'] == 14
    assert out['CentreDist/depth_abs_err_all'] == pytest.approx(1.5,
                                                                abs=1e-5)
