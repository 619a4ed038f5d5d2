"""Tests of ddml's CPU rotated IoU for mmdet3d's KITTI evaluation.

* Geometry: BEV and 3D overlaps against exact polygon intersections by
  shapely on >= 10,000 random and adversarial box pairs.
* End to end: mmdet3d's ``kitti_eval`` and ``KittiMetric`` on real KITTI
  frames (read from ../shared/data, repeated to have > 40 objects for
  AP40), perfect and depth-shifted predictions.
* Backend selection: ``DDML_KITTI_IOU`` and ``use_cpu_rotated_iou``.
"""
import copy
import pickle
import re
from typing import Dict, List, Tuple

import numpy as np
import pytest

shapely = pytest.importorskip('shapely')

from ddml.compat import kitti_rotated_iou as kci  # noqa: E402
from ddml.evaluation.rotated_iou import rotate_iou_cpu_eval  # noqa: E402

eval_module = pytest.importorskip(
    'mmdet3d.evaluation.functional.kitti_utils.eval')

TOL = 1e-5
GRID = 1e-9  # snap-rounding grid of the shapely reference
BEV_COLUMNS = [0, 2, 3, 5, 6]


@pytest.fixture(autouse=True)
def restore_backend(monkeypatch):
    """Run each test with DDML_KITTI_IOU unset; restore the mode after."""
    mode = kci._state['mode']
    monkeypatch.delenv(kci.KITTI_IOU_ENV, raising=False)
    yield
    monkeypatch.undo()
    kci.use_cpu_rotated_iou(mode)


# --------------------------------------------------------------------------
# Reference geometry (independent of ddml): corners as the CUDA kernel
# builds them, x' = cos*dx + sin*dy, y' = -sin*dx + cos*dy, areas by shapely.
# --------------------------------------------------------------------------
def ref_corners(boxes: np.ndarray) -> np.ndarray:
    """(M, 5) [x, y, w, h, angle] -> (M, 4, 2) corners."""
    cos, sin = np.cos(boxes[:, 4:5]), np.sin(boxes[:, 4:5])
    dx = np.array([[-0.5, -0.5, 0.5, 0.5]]) * boxes[:, 2:3]
    dy = np.array([[-0.5, 0.5, 0.5, -0.5]]) * boxes[:, 3:4]
    return np.stack([
        cos * dx + sin * dy + boxes[:, 0:1],
        -sin * dx + cos * dy + boxes[:, 1:2]
    ], -1)


def ref_inter_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of aligned pairs (M, 5), (M, 5) -> (M,).

    GEOS's floating overlay can return a whole polygon as the intersection
    of two rectangles touching within 1e-16 (seen with GEOS 3.11), so the
    reference uses its snap-rounding overlay on a 1e-9 grid, whose area
    error (~perimeter x 1e-9) is far below the tolerance.
    """
    pa = shapely.polygons(ref_corners(a))
    pb = shapely.polygons(ref_corners(b))
    return shapely.area(shapely.intersection(pa, pb, grid_size=GRID))


def ref_bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = ref_inter_area(a, b)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def ref_3d_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3D IoU of aligned camera boxes (M, 7) [x, y, z, l, h, w, ry]; y is the
    bottom, the box spans [y - h, y]."""
    inter_bev = ref_inter_area(a[:, BEV_COLUMNS], b[:, BEV_COLUMNS])
    dy = np.clip(
        np.minimum(a[:, 1], b[:, 1]) -
        np.maximum(a[:, 1] - a[:, 4], b[:, 1] - b[:, 4]), 0, None)
    inter = inter_bev * dy
    vol_a, vol_b = a[:, 3:6].prod(1), b[:, 3:6].prod(1)
    return inter / (vol_a + vol_b - inter)


def aligned(fn, a: np.ndarray, b: np.ndarray, chunk: int = 100,
            **kwargs) -> np.ndarray:
    """Diagonal of fn(a, b) computed in chunks: pairwise values."""
    out = [
        np.diag(fn(a[i:i + chunk], b[i:i + chunk], **kwargs))
        for i in range(0, len(a), chunk)
    ]
    return np.concatenate(out)


def random_boxes(rng: np.random.Generator, m: int,
                 spread: float = 2.0) -> np.ndarray:
    return np.c_[rng.uniform(-spread, spread, (m, 2)),
                 rng.uniform(0.2, 5.0, (m, 2)),
                 rng.uniform(-2 * np.pi, 2 * np.pi, m)]


def local_offset(boxes: np.ndarray, u: np.ndarray,
                 v: np.ndarray) -> np.ndarray:
    """Centres moved by (u, v) along the boxes' own w and h axes."""
    cos, sin = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
    out = boxes.copy()
    out[:, 0] += cos * u + sin * v
    out[:, 1] += -sin * u + cos * v
    return out


def bev_pair_cases(seed: int = 0) -> Dict[str, Tuple[np.ndarray,
                                                     np.ndarray]]:
    """>= 10,000 BEV box pairs in named categories."""
    rng = np.random.default_rng(seed)
    cases = {}
    a = random_boxes(rng, 4000)
    cases['random'] = (a, random_boxes(rng, 4000))
    a = random_boxes(rng, 1000)
    cases['identical'] = (a, a.copy())
    # Contained: a small box well inside a large one (centre offset plus
    # circumradius of the small one < inradius of the large one).
    big = np.c_[rng.uniform(-2, 2, (1000, 2)), rng.uniform(3, 6, (1000, 2)),
                rng.uniform(-np.pi, np.pi, 1000)]
    small = np.c_[big[:, :2], rng.uniform(0.1, 1.0, (1000, 2)),
                  rng.uniform(-np.pi, np.pi, 1000)]
    room = 0.5 * big[:, 2:4].min(1) - 0.5 * np.hypot(small[:, 2], small[:, 3])
    ang = rng.uniform(0, 2 * np.pi, 1000)
    rad = rng.uniform(0, 0.99, 1000) * room
    small[:, 0] += rad * np.cos(ang)
    small[:, 1] += rad * np.sin(ang)
    cases['contained'] = (np.r_[big[:500], small[500:]],
                          np.r_[small[:500], big[500:]])
    # Touching: same angle, shifted by exactly half the summed sizes along
    # one local axis (edge contact) or both (corner contact).
    a = random_boxes(rng, 1000)
    b = a.copy()
    b[:, 2:4] = rng.uniform(0.2, 5.0, (1000, 2))
    u = 0.5 * (a[:, 2] + b[:, 2]) * rng.choice([-1, 1], 1000)
    v = 0.5 * (a[:, 3] + b[:, 3]) * rng.choice([-1, 1], 1000)
    edge = rng.random(1000) < 0.5
    v = np.where(edge, rng.uniform(-0.4, 0.4, 1000) * a[:, 3], v)
    cases['touching'] = (a, local_offset(b, u, v))
    # Disjoint: centres farther apart than the summed circumradii.
    a = random_boxes(rng, 1000)
    b = random_boxes(rng, 1000)
    r = 0.5 * (np.hypot(a[:, 2], a[:, 3]) + np.hypot(b[:, 2], b[:, 3]))
    ang = rng.uniform(0, 2 * np.pi, 1000)
    b[:, 0] = a[:, 0] + (r + rng.uniform(1e-3, 3, 1000)) * np.cos(ang)
    b[:, 1] = a[:, 1] + (r + rng.uniform(1e-3, 3, 1000)) * np.sin(ang)
    cases['disjoint'] = (a, b)
    # Near-parallel edges: angle differences from 1e-9 to 1e-3 rad, plus
    # exactly parallel (and 90 degree) pairs with partial overlap.
    a = random_boxes(rng, 2000)
    b = local_offset(a, rng.uniform(-1, 1, 2000) * a[:, 2],
                     rng.uniform(-1, 1, 2000) * a[:, 3])
    b[:, 2:4] = a[:, 2:4] * rng.uniform(0.5, 1.5, (2000, 2))
    eps = 10**rng.uniform(-9, -3, 2000) * rng.choice([-1, 1], 2000)
    eps[:500] = 0.0
    eps[500:700] = np.pi / 2
    b[:, 4] = a[:, 4] + eps
    cases['near_parallel'] = (a, b)
    # Axis-aligned boxes on a grid: shared edge lines and collinear edges.
    a = np.c_[rng.integers(-3, 4, (1000, 2)) * 0.5,
              rng.integers(1, 5, (1000, 2)) * 0.5,
              rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2], 1000)]
    b = np.c_[rng.integers(-3, 4, (1000, 2)) * 0.5,
              rng.integers(1, 5, (1000, 2)) * 0.5,
              rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2], 1000)]
    cases['axis_aligned_grid'] = (a, b)
    assert sum(len(a) for a, _ in cases.values()) >= 10000
    return cases


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------
def test_bev_iou_matches_shapely_on_10k_pairs():
    for name, (a, b) in bev_pair_cases().items():
        got = aligned(rotate_iou_cpu_eval, a, b)
        ref = ref_bev_iou(a, b)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL, err_msg=name)
    a, b = bev_pair_cases()['identical']
    np.testing.assert_allclose(aligned(rotate_iou_cpu_eval, a, b), 1.0,
                               atol=TOL)
    a, b = bev_pair_cases()['disjoint']
    assert not aligned(rotate_iou_cpu_eval, a, b).any()


def test_bev_all_pairs_and_criteria_match_shapely():
    """Full N x K matrices (row = box, column = query) and the criteria as
    the CUDA kernel: 0 -> over the query area, 1 -> over the box area,
    2 -> intersection area."""
    rng = np.random.default_rng(1)
    boxes, query = random_boxes(rng, 120), random_boxes(rng, 90)
    ii, kk = np.meshgrid(np.arange(120), np.arange(90), indexing='ij')
    a, q = boxes[ii.ravel()], query[kk.ravel()]
    inter = ref_inter_area(a, q).reshape(120, 90)
    area_a = (boxes[:, 2] * boxes[:, 3])[:, None]
    area_q = (query[:, 2] * query[:, 3])[None]
    refs = {
        -1: inter / (area_a + area_q - inter),
        0: inter / area_q,
        1: inter / area_a,
        2: inter,
    }
    for criterion, ref in refs.items():
        got = rotate_iou_cpu_eval(boxes, query, criterion)
        assert got.shape == (120, 90)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=TOL,
                                   err_msg=f'criterion {criterion}')
    # The multi-threaded kernel gives the same numbers.
    np.testing.assert_array_equal(
        rotate_iou_cpu_eval(boxes, query, parallel=True),
        rotate_iou_cpu_eval(boxes, query, parallel=False))


def test_rotate_iou_cpu_eval_edge_cases():
    assert rotate_iou_cpu_eval(np.zeros((0, 5)), np.ones((3, 5))).shape == \
        (0, 3)
    assert rotate_iou_cpu_eval(np.ones((2, 5)), np.zeros((0, 5))).shape == \
        (2, 0)
    with pytest.raises(ValueError, match=r'query_boxes must have shape'):
        rotate_iou_cpu_eval(np.ones((2, 5)), np.ones((2, 4)))
    # float32 input as eval.py may pass it, and a hand-computable case:
    # unit square vs the same square shifted by 0.5 -> IoU 1/3.
    iou = rotate_iou_cpu_eval(
        np.array([[0, 0, 1, 1, 0]], np.float32),
        np.array([[0.5, 0, 1, 1, 0]], np.float32))
    np.testing.assert_allclose(iou, [[1 / 3]], atol=1e-7)
    # Rotation direction: a 4 x 1 box turned by +30 degrees (clockwise in
    # the x-y frame) covers the point (1.5, -0.866) but not (1.5, 0.866).
    long_box = np.array([[0, 0, 4, 1, np.pi / 6]])
    probe = np.array([[1.5, -0.866, 0.01, 0.01, 0],
                      [1.5, 0.866, 0.01, 0.01, 0]])
    frac = rotate_iou_cpu_eval(probe, long_box, criterion=1)
    np.testing.assert_allclose(frac[:, 0], [1.0, 0.0], atol=1e-6)


def test_3d_iou_matches_shapely_times_height():
    """The patched d3_box_overlap (CPU BEV area + mmdet3d's height kernel)
    equals shapely's area x height overlap over the union volume."""
    kci.use_cpu_rotated_iou(True)
    rng = np.random.default_rng(2)
    cases = bev_pair_cases(seed=3)
    for name, (a, b) in cases.items():
        m = len(a)
        y = rng.uniform(1.0, 2.0, (2, m))
        h = rng.uniform(0.5, 2.5, (2, m))
        if name == 'identical':
            y[1], h[1] = y[0], h[0]
        elif name == 'touching':  # touching vertically for half of them
            y[1, ::2] = y[0, ::2] - h[0, ::2]
        # BEV [x, z, l, w, ry] -> camera box [x, y, z, l, h, w, ry]
        box_a = np.c_[a[:, 0], y[0], a[:, 1], a[:, 2], h[0], a[:, 3], a[:, 4]]
        box_b = np.c_[b[:, 0], y[1], b[:, 1], b[:, 2], h[1], b[:, 3], b[:, 4]]
        # Detections float32, ground truth float64, as in calculate_iou_partly
        # for model outputs (one compilation of mmdet3d's d3 kernel).
        box_a = box_a.astype(np.float32).astype(np.float64)
        if name == 'identical':
            box_b = box_a.copy()
        got = aligned(eval_module.d3_box_overlap, box_a.astype(np.float32),
                      box_b)
        np.testing.assert_allclose(
            got, ref_3d_iou(box_a, box_b), rtol=0, atol=TOL, err_msg=name)
        if name == 'identical':
            np.testing.assert_allclose(got, 1.0, atol=TOL)


def test_bev_convention_matches_mmdet3d_camera_boxes():
    """KITTI eval's BEV boxes [x, z, l, w, ry] are the footprints of
    mmdet3d's CameraInstance3DBoxes (independent corner source)."""
    structures = pytest.importorskip('mmdet3d.structures')
    import torch
    rng = np.random.default_rng(4)
    m = 400
    boxes = np.c_[rng.uniform(-3, 3, m), rng.uniform(1, 2, m),
                  rng.uniform(5, 10, m), rng.uniform(0.5, 5, (m, 3)),
                  rng.uniform(-np.pi, np.pi, m)]
    corners = structures.CameraInstance3DBoxes(
        torch.from_numpy(boxes)).corners.numpy()  # (m, 8, 3)
    footprint = shapely.convex_hull(
        shapely.multipoints(corners[:, :, [0, 2]]))
    a, b = footprint[:m // 2], footprint[m // 2:]
    inter = shapely.area(shapely.intersection(a, b, grid_size=GRID))
    ref = inter / (shapely.area(a) + shapely.area(b) - inter)
    got = aligned(kci.bev_box_overlap, boxes[:m // 2, BEV_COLUMNS],
                  boxes[m // 2:, BEV_COLUMNS])
    assert (ref > 0.05).sum() > 20  # enough overlapping pairs to matter
    np.testing.assert_allclose(got, ref, atol=1e-4)


# --------------------------------------------------------------------------
# End to end on real KITTI frames
# --------------------------------------------------------------------------
ANNO_KEYS = ('name', 'truncated', 'occluded', 'alpha', 'bbox', 'dimensions',
             'location', 'rotation_y', 'score')


def annos_from_v2_info(info: dict, categories: Dict[str, int]) -> dict:
    """KITTI anno dict of an mmdet3d v2 info (camera bbox_3d)."""
    label2cat = {v: k for k, v in categories.items()}
    inst = info['instances']
    return dict(
        name=np.array([label2cat[i['bbox_label']] for i in inst]),
        truncated=np.array([i['truncated'] for i in inst], dtype=float),
        occluded=np.array([i['occluded'] for i in inst]),
        alpha=np.array([i['alpha'] for i in inst], dtype=float),
        bbox=np.array([i['bbox'] for i in inst], dtype=float).reshape(-1, 4),
        location=np.array([i['bbox_3d'][:3] for i in inst]).reshape(-1, 3),
        dimensions=np.array([i['bbox_3d'][3:6] for i in inst]).reshape(-1, 3),
        rotation_y=np.array([i['bbox_3d'][6] for i in inst], dtype=float),
        score=np.zeros(len(inst)))


@pytest.fixture(scope='module')
def real_gt_annos(kitti_test_root) -> List[dict]:
    """Frames 000000 (1 Pedestrian) and 000007 (3 Cars, 1 Cyclist, 2
    DontCare), 48 times each: 48 valid objects of each class (Cyclist only
    in moderate/hard; 2 of the 3 Cars are too small and ignored)."""
    with open(kitti_test_root / 'kitti_infos_train.pkl', 'rb') as f:
        v2 = pickle.load(f)
    with open(kitti_test_root / 'kitti_infos_mono3d.pkl', 'rb') as f:
        legacy = pickle.load(f)
    frame0 = annos_from_v2_info(v2['data_list'][0],
                                v2['metainfo']['categories'])
    frame7 = {k: np.asarray(legacy[0]['annos'][k]) for k in ANNO_KEYS}
    return [copy.deepcopy(f) for _ in range(48) for f in (frame0, frame7)]


def predictions_from_gt(gt_annos: List[dict],
                        depth_shift: float = 0.0,
                        seed: int = 0) -> List[dict]:
    """Detections equal to the ground truth (DontCare removed) with
    distinct scores; ``depth_shift`` metres are added to every z.

    Boxes are float32 like model outputs (and KittiMetric's), so mmdet3d's
    numba functions are compiled once for both end-to-end tests.
    """
    rng = np.random.default_rng(seed)
    dt_annos = []
    for gt in gt_annos:
        keep = gt['name'] != 'DontCare'
        dt = {k: np.array(gt[k][keep]) for k in ANNO_KEYS}
        dt['score'] = rng.uniform(0.1, 1.0, int(keep.sum()))
        for k in ('alpha', 'bbox', 'location', 'dimensions', 'rotation_y',
                  'score'):
            dt[k] = dt[k].astype(np.float32)
        dt['location'][:, 2] += depth_shift
        dt_annos.append(dt)
    return dt_annos


def aos_ap40(result_str: str) -> Dict[Tuple[str, int], List[float]]:
    """{(class, overlap set 0 strict / 1 loose): [easy, moderate, hard]}
    of the 'aos  AP40' lines of kitti_eval's report."""
    section = result_str.split('AP40 Results')[1]
    out, seen, current = {}, {}, None
    for line in section.splitlines():
        header = re.match(r'^(\w+) AP40@', line)
        if header:
            current = header.group(1)
            idx = seen[current] = seen.get(current, -1) + 1
        elif line.startswith('aos  AP40:') and current is not None:
            out[(current, idx)] = [
                float(x) for x in line.split(':')[1].split(',')
            ]
    return out


VALID = {
    'Car': ('easy', 'moderate', 'hard'),
    'Pedestrian': ('easy', 'moderate', 'hard'),
    'Cyclist': ('moderate', 'hard'),
}


def run_kitti_eval(gt_annos, dt_annos):
    from mmdet3d.evaluation import kitti_eval
    return kitti_eval(gt_annos, dt_annos, ['Car', 'Pedestrian', 'Cyclist'],
                      eval_types=['bbox', 'bev', '3d'])


def test_kitti_eval_real_frames_perfect_and_shifted(real_gt_annos):
    kci.use_cpu_rotated_iou(True)
    result_str, ap = run_kitti_eval(real_gt_annos,
                                    predictions_from_gt(real_gt_annos))
    for cls, diffs in VALID.items():
        for diff in diffs:
            for kind in ('3D', 'BEV', '2D'):
                for ap_kind in ('AP40', 'AP11'):
                    for strictness in ('strict', 'loose'):
                        key = f'KITTI/{cls}_{kind}_{ap_kind}_{diff}_' \
                              f'{strictness}'
                        assert ap[key] == pytest.approx(100.0), key
    aos = aos_ap40(result_str)
    for cls, diffs in VALID.items():
        for overlap_set in (0, 1):
            for d, diff in enumerate(('easy', 'moderate', 'hard')):
                if diff in diffs:
                    assert aos[(cls, overlap_set)][d] == 100.0

    # Depth +0.8 m: the Car (l = 3.2 m along z) keeps a 3D/BEV IoU of about
    # 2.4 / 4.0 = 0.6 (loose 0.5 passes, strict 0.7 fails), the Cyclist
    # (l = 1.95 m along z) 1.15 / 2.75 = 0.42 (loose 0.25 passes, strict 0.5
    # fails); the Pedestrian (0.48 m deep) no longer overlaps. 2D unchanged.
    result_str, ap = run_kitti_eval(
        real_gt_annos, predictions_from_gt(real_gt_annos, depth_shift=0.8))
    for diff in ('easy', 'moderate', 'hard'):
        for kind in ('3D', 'BEV'):
            assert ap[f'KITTI/Car_{kind}_AP40_{diff}_strict'] == 0.0
            assert ap[f'KITTI/Car_{kind}_AP40_{diff}_loose'] == \
                pytest.approx(100.0)
            assert ap[f'KITTI/Pedestrian_{kind}_AP40_{diff}_loose'] == 0.0
        for cls in ('Car', 'Pedestrian'):
            assert ap[f'KITTI/{cls}_2D_AP40_{diff}_strict'] == \
                pytest.approx(100.0)
    for kind in ('3D', 'BEV'):
        assert ap[f'KITTI/Cyclist_{kind}_AP40_moderate_strict'] == 0.0
        assert ap[f'KITTI/Cyclist_{kind}_AP40_moderate_loose'] == \
            pytest.approx(100.0)
    assert ap['KITTI/Cyclist_2D_AP40_moderate_strict'] == pytest.approx(100.0)
    assert aos_ap40(result_str)[('Car', 0)] == [100.0] * 3


def test_kitti_metric_real_frame(kitti_test_root, tmp_path, monkeypatch):
    """KittiMetric (as the configs use it) on frame 000000 repeated 48
    times, predictions as CameraInstance3DBoxes."""
    pytest.importorskip('mmdet3d.evaluation.metrics')
    import mmengine
    import torch
    from mmdet3d.evaluation.metrics import KittiMetric
    from mmdet3d.evaluation.metrics import kitti_metric as km_module
    from mmdet3d.structures import CameraInstance3DBoxes
    kci.use_cpu_rotated_iou(True)

    infos = mmengine.load(kitti_test_root / 'kitti_infos_train.pkl')
    frame = infos['data_list'][0]
    infos['data_list'] = []
    for i in range(48):  # sample_idx must index data_list
        info = copy.deepcopy(frame)
        info['sample_idx'] = i
        infos['data_list'].append(info)
    ann_file = tmp_path / 'kitti_infos_repeated.pkl'  # outside the repo
    mmengine.dump(infos, str(ann_file))
    reports = []
    original_kitti_eval = km_module.kitti_eval

    def recording_kitti_eval(*args, **kwargs):
        result_str, ap = original_kitti_eval(*args, **kwargs)
        reports.append(result_str)
        return result_str, ap

    monkeypatch.setattr(km_module, 'kitti_eval', recording_kitti_eval)

    def evaluate(depth_shift: float) -> Dict[str, float]:
        metric = KittiMetric(ann_file=str(ann_file), metric='bbox')
        metric.dataset_meta = dict(classes=['Pedestrian', 'Cyclist', 'Car'])
        rng = np.random.default_rng(0)
        results = []
        for i in range(48):
            inst = frame['instances'][0]
            box = torch.tensor([inst['bbox_3d']])
            box[:, 2] += depth_shift
            score = float(rng.uniform(0.1, 1.0))
            results.append(
                dict(
                    pred_instances_3d=dict(
                        bboxes_3d=CameraInstance3DBoxes(box),
                        scores_3d=torch.tensor([score]),
                        labels_3d=torch.tensor([0])),
                    pred_instances=dict(
                        bboxes=torch.tensor([inst['bbox']]),
                        scores=torch.tensor([score]),
                        labels=torch.tensor([0])),
                    sample_idx=i))
        return metric.compute_metrics(results)

    ap = evaluate(0.0)
    for diff in ('easy', 'moderate', 'hard'):
        for kind in ('3D', 'BEV', '2D'):
            key = f'pred_instances_3d/KITTI/Pedestrian_{kind}_AP40_{diff}_' \
                  'strict'
            assert ap[key] == pytest.approx(100.0), key
        assert ap[f'pred_instances/KITTI/Pedestrian_2D_AP40_{diff}_strict'] \
            == pytest.approx(100.0)
    # KittiMetric recomputes alpha = ry - atan2(x, z) = -0.2054 while the
    # label says -0.2: AOS = 100 * (1 + cos(0.0054)) / 2 = 99.9993.
    aos = aos_ap40(reports[0])[('Pedestrian', 0)]
    assert min(aos) >= 99.99

    ap = evaluate(3.0)  # 3 m deeper: no 3D / BEV overlap any more
    for diff in ('easy', 'moderate', 'hard'):
        assert ap[f'pred_instances_3d/KITTI/Pedestrian_3D_AP40_{diff}_'
                  'loose'] == 0.0
        assert ap[f'pred_instances_3d/KITTI/Pedestrian_BEV_AP40_{diff}_'
                  'loose'] == 0.0
        assert ap[f'pred_instances/KITTI/Pedestrian_2D_AP40_{diff}_strict'] \
            == pytest.approx(100.0)


# --------------------------------------------------------------------------
# Backend selection
# --------------------------------------------------------------------------
def is_ddml(fn) -> bool:
    return getattr(fn, kci._MARK, False)


def test_import_patches_kitti_eval():
    import ddml  # noqa: F401
    # Default (auto) after import: our dispatchers are installed.
    kci.use_cpu_rotated_iou()
    assert is_ddml(eval_module.bev_box_overlap)
    assert is_ddml(eval_module.d3_box_overlap)
    assert not is_ddml(eval_module._ddml_original_bev_box_overlap)


def test_env_variable_selects_backend(monkeypatch):
    monkeypatch.setenv('DDML_KITTI_IOU', 'cpu')
    assert kci.use_cpu_rotated_iou() == 'cpu'
    assert kci.get_kitti_iou_backend() == 'cpu'
    assert eval_module.bev_box_overlap is kci.bev_box_overlap

    monkeypatch.setenv('DDML_KITTI_IOU', ' CUDA ')
    assert kci.use_cpu_rotated_iou() == 'cuda'
    assert kci.get_kitti_iou_backend() == 'cuda'
    assert eval_module.bev_box_overlap is \
        eval_module._ddml_original_bev_box_overlap
    assert not is_ddml(eval_module.d3_box_overlap)

    # The function argument wins over the variable; idempotent.
    for _ in range(2):
        assert kci.use_cpu_rotated_iou(True) == 'cpu'
    assert is_ddml(eval_module.d3_box_overlap)
    assert not is_ddml(eval_module._ddml_original_d3_box_overlap)
    assert kci.use_cpu_rotated_iou(False) == 'cuda'
    assert kci.use_cpu_rotated_iou('auto') == 'auto'

    monkeypatch.setenv('DDML_KITTI_IOU', '')
    assert kci.use_cpu_rotated_iou() == 'auto'


def test_invalid_backend_values(monkeypatch):
    monkeypatch.setenv('DDML_KITTI_IOU', 'gpu')
    with pytest.raises(ValueError) as err:
        kci.use_cpu_rotated_iou()
    assert 'DDML_KITTI_IOU' in str(err.value)
    assert "'gpu'" in str(err.value)
    assert 'auto, cpu, cuda' in str(err.value)
    with pytest.raises(ValueError, match=r"'cpu'.*'cuda'"):
        kci.use_cpu_rotated_iou('gpu')
    with pytest.raises(ValueError):
        kci.use_cpu_rotated_iou(1)


def test_auto_keeps_cuda_results_when_cuda_is_available(monkeypatch):
    """auto must not change results on CUDA machines: the originals run."""
    calls = []

    def fake_cuda_bev(boxes, qboxes, criterion=-1):
        calls.append(criterion)
        return np.full((len(boxes), len(qboxes)), 0.5, np.float32)

    monkeypatch.setattr(eval_module, '_ddml_original_bev_box_overlap',
                        fake_cuda_bev)
    monkeypatch.setattr(kci, '_cuda_usable', lambda: True)
    kci.use_cpu_rotated_iou('auto')
    assert kci.get_kitti_iou_backend() == 'cuda'
    boxes = np.array([[0, 0, 1, 1, 0.0]])
    assert eval_module.bev_box_overlap(boxes, boxes)[0, 0] == 0.5
    assert calls == [-1]
    # Explicit CPU request overrides a present GPU.
    kci.use_cpu_rotated_iou(True)
    assert eval_module.bev_box_overlap(boxes, boxes)[0, 0] == 1.0

    monkeypatch.setattr(kci, '_cuda_usable', lambda: False)
    kci.use_cpu_rotated_iou('auto')
    assert kci.get_kitti_iou_backend() == 'cpu'
    assert eval_module.bev_box_overlap(boxes, boxes)[0, 0] == 1.0


def test_backend_logged_once(monkeypatch):
    messages = []
    monkeypatch.setitem(kci._state, 'logged', None)
    monkeypatch.setattr(kci, '_log', lambda msg, level=0: messages.append(
        msg))
    kci.use_cpu_rotated_iou(True)
    kci.use_cpu_rotated_iou(True)
    boxes = np.array([[0, 0, 1, 1, 0.0]])
    eval_module.bev_box_overlap(boxes, boxes)
    assert len(messages) == 1 and 'CPU' in messages[0]
