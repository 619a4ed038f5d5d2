"""Waymo metric without TensorFlow: hand cases for the numpy core, and the
whole path (infos -> WaymoDataset -> predictions -> WaymoMono3DMetric) on the
real Waymo frames in ../shared/data.

The cross-check against Waymo's own op is test_waymo_oracle.py.
"""
import math
import shutil

import numpy as np
import pytest

from ddml.evaluation.waymo_ap import (LETConfig, TYPE_CYCLIST,
                                      TYPE_PEDESTRIAN, TYPE_VEHICLE,
                                      WaymoFrame, difficulty_from_num_points,
                                      evaluate_waymo, heading_accuracy,
                                      longitudinal_affinity,
                                      mean_average_precision, waymo_3d_config,
                                      waymo_let_config)
from ddml.evaluation.waymo_iou import box3d_iou, box3d_iou_matrix

CAR = np.array([[15.0, 4.0, 0.9, 4.5, 2.0, 1.6, 0.4]])
PED = np.array([[9.0, -2.0, 0.9, 0.9, 0.8, 1.8, -1.0]])
CYC = np.array([[22.0, 1.0, 0.9, 1.8, 0.7, 1.7, 2.5]])
EMPTY = np.zeros((0, 7))


def frame(pb, ps, pt, gb, gt, gd=None):
    gb = np.reshape(gb, (-1, 7))
    return WaymoFrame(
        np.reshape(pb, (-1, 7)), np.asarray(ps, float), np.asarray(pt, int),
        gb, np.asarray(gt, int),
        np.ones(len(gb), int) if gd is None else np.asarray(gd, int))


def along(box, d):
    """Moves boxes by d metres along their heading."""
    b = np.array(box, dtype=float)
    b[:, 0] += d * np.cos(b[:, 6])
    b[:, 1] += d * np.sin(b[:, 6])
    return b


def shift_for_iou(length, iou):
    return length * (1 - iou) / (1 + iou)


def ap(results, t, level=1, name='AP'):
    return results[('OBJECT_TYPE', t, None, level)][name]


# ---------------------------------------------------------------- IoU ---- #
def test_iou_identical_rotated_and_disjoint():
    assert box3d_iou(CAR[0], CAR[0]) == pytest.approx(1.0)
    # A square rotated by 90 degrees is the same box.
    sq = np.array([0, 0, 0, 2, 2, 2, 0.3])
    sq90 = sq.copy()
    sq90[6] += math.pi / 2
    assert box3d_iou(sq, sq90) == pytest.approx(1.0)
    far = CAR.copy()
    far[0, 0] += 10
    assert box3d_iou(CAR[0], far[0]) == 0.0
    # No height overlap.
    up = CAR.copy()
    up[0, 2] += 2.0
    assert box3d_iou(CAR[0], up[0]) == 0.0


def test_iou_hand_values():
    # Shift along the length axis: IoU = (l - d) / (l + d).
    for d in (0.3, 0.65, 1.5):
        assert box3d_iou(CAR[0], along(CAR, d)[0]) == pytest.approx(
            (4.5 - d) / (4.5 + d))
    # Half the height overlapping.
    b = CAR.copy()
    b[0, 2] += 0.8
    assert box3d_iou(CAR[0], b[0]) == pytest.approx(0.8 / 2.4)
    # Unit squares, one rotated 45 degrees about the same centre:
    # intersection is a regular octagon of area 2 (sqrt(2) - 1).
    a = np.array([0, 0, 0, 1, 1, 1, 0.0])
    r = np.array([0, 0, 0, 1, 1, 1, math.pi / 4])
    inter = 2 * (math.sqrt(2) - 1)
    assert box3d_iou(a, r) == pytest.approx(inter / (2 - inter))
    # Degenerate boxes give 0 as in the devkit.
    tiny = a.copy()
    tiny[3] = 0.005
    assert box3d_iou(a, tiny) == 0.0
    m = box3d_iou_matrix(np.r_[CAR, PED], np.r_[CAR, PED, CYC])
    assert m.shape == (2, 3)
    np.testing.assert_allclose(np.diag(m[:, :2]), 1.0)


# ---------------------------------------------------------------- AP ----- #
def test_identical_boxes_give_ap_one_all_classes():
    gb = np.r_[CAR, PED, CYC]
    types = [TYPE_VEHICLE, TYPE_PEDESTRIAN, TYPE_CYCLIST]
    res = evaluate_waymo([frame(gb, [0.9, 0.8, 0.7], types, gb, types)])
    for t in types:
        for lv in (1, 2):
            assert ap(res, t, lv) == pytest.approx(1.0)
            assert ap(res, t, lv, 'APH') == pytest.approx(1.0)


@pytest.mark.parametrize('t,box,thr', [(TYPE_VEHICLE, CAR, 0.7),
                                       (TYPE_PEDESTRIAN, PED, 0.5),
                                       (TYPE_CYCLIST, CYC, 0.5)])
def test_shift_around_class_threshold(t, box, thr):
    length = box[0, 3]
    above = along(box, shift_for_iou(length, thr + 0.01))
    below = along(box, shift_for_iou(length, thr - 0.01))
    assert box3d_iou(box[0], above[0]) > thr > box3d_iou(box[0], below[0])
    assert ap(evaluate_waymo([frame(above, [0.9], [t], box, [t])]),
              t) == pytest.approx(1.0)
    assert ap(evaluate_waymo([frame(below, [0.9], [t], box, [t])]), t) == 0.0


def test_brief_sanity_shifts():
    # A 4 m long car shifted 0.65 m along its heading: IoU 0.72, AP 1 at
    # the 0.7 threshold; shifted 0.75 m: IoU 0.68, AP 0.
    car4 = np.array([[15.0, 4.0, 0.9, 4.0, 2.0, 1.6, 0.4]])
    assert box3d_iou(car4[0], along(car4, 0.65)[0]) == pytest.approx(
        0.72, abs=0.001)
    v = TYPE_VEHICLE
    assert ap(evaluate_waymo([frame(along(car4, .65), [.9], [v], car4, [v])]),
              v) == pytest.approx(1.0)
    assert ap(evaluate_waymo([frame(along(car4, .75), [.9], [v], car4, [v])]),
              v) == 0.0


def test_heading_flipped_gives_aph_zero_and_half_at_right_angle():
    v = TYPE_VEHICLE
    flipped = CAR.copy()
    flipped[0, 6] += math.pi
    res = evaluate_waymo([frame(flipped, [0.9], [v], CAR, [v])])
    assert ap(res, v) == pytest.approx(1.0)
    assert ap(res, v, name='APH') == pytest.approx(0.0, abs=1e-6)
    sq = np.array([[10, 0, 0, 2, 2, 1.5, 0.0]])
    turned = sq.copy()
    turned[0, 6] = math.pi / 2  # same footprint, heading off by 90 degrees
    res = evaluate_waymo([frame(turned, [0.9], [v], sq, [v])])
    assert ap(res, v, name='APH') == pytest.approx(0.5, abs=1e-6)
    assert heading_accuracy(np.array([3.0]), np.array([-3.0]))[0] == \
        pytest.approx(1 - (2 * math.pi - 6.0) / math.pi, abs=1e-6)


def test_empty_frames():
    v = TYPE_VEHICLE
    nothing = frame(EMPTY, [], [], EMPTY, [])
    res = evaluate_waymo([nothing, nothing])
    assert ap(res, v) == 0.0
    # Frames without anything do not change the result of others.
    base = frame(CAR, [0.9], [v], CAR, [v])
    assert ap(evaluate_waymo([base, nothing]), v) == pytest.approx(1.0)
    # Missed GT only / FP only.
    assert ap(evaluate_waymo([frame(EMPTY, [], [], CAR, [v])]), v) == 0.0
    assert ap(evaluate_waymo([frame(CAR, [.9], [v], EMPTY, [])]), v) == 0.0
    # Half the GTs found with precision 1 -> AP 0.5.
    res = evaluate_waymo([base, frame(EMPTY, [], [], CAR, [v])])
    assert ap(res, v) == pytest.approx(0.5)


def test_wrong_class_does_not_match():
    res = evaluate_waymo(
        [frame(CAR, [0.9], [TYPE_CYCLIST], CAR, [TYPE_VEHICLE])])
    assert ap(res, TYPE_VEHICLE) == 0.0
    assert ap(res, TYPE_CYCLIST) == 0.0


def test_difficulty_levels():
    keep, level = difficulty_from_num_points([0, 1, 5, 6, 300])
    assert keep.tolist() == [False, True, True, True, True]
    assert level[1:].tolist() == [2, 2, 1, 1]
    keep, level = difficulty_from_num_points([3, 100], labelled=[1, 2])
    assert level.tolist() == [1, 2]
    v = TYPE_VEHICLE
    g2 = along(CAR, 20.0)
    gts = np.r_[CAR, g2]
    # The LEVEL_2 box is missed: LEVEL_1 AP is 1, LEVEL_2 AP 0.5.
    res = evaluate_waymo([frame(CAR, [0.9], [v], gts, [v, v], [1, 2])])
    assert ap(res, v, 1) == pytest.approx(1.0)
    assert ap(res, v, 2) == pytest.approx(0.5)
    # As in Waymo's devkit, a detected LEVEL_2 box is a TP at LEVEL_1 too:
    # TP 1 (the LEVEL_2 box), FN 1 (the missed LEVEL_1 box) -> AP 0.5.
    res = evaluate_waymo([frame(g2, [0.9], [v], gts, [v, v], [1, 2])])
    assert ap(res, v, 1) == pytest.approx(0.5)
    res = evaluate_waymo([frame(gts, [0.9, 0.8], [v, v], gts, [v, v],
                                [1, 2])])
    assert ap(res, v, 1) == pytest.approx(1.0)


def test_score_ties_and_ordering():
    v = TYPE_VEHICLE
    fp = along(CAR, 30.0)
    # FP scored above the TP: AP 0.5 (precision 0.5 at recall 1).
    res = evaluate_waymo([frame(np.r_[CAR, fp], [0.5, 0.9], [v, v], CAR,
                                [v])])
    assert ap(res, v) == pytest.approx(0.5)
    # Tie: both enter at the same cutoff -> same as above.
    res = evaluate_waymo([frame(np.r_[CAR, fp], [0.7, 0.7], [v, v], CAR,
                                [v])])
    assert ap(res, v) == pytest.approx(0.5)
    # TP above FP: AP 1.
    res = evaluate_waymo([frame(np.r_[CAR, fp], [0.9, 0.5], [v, v], CAR,
                                [v])])
    assert ap(res, v) == pytest.approx(1.0)


def test_mean_average_precision_hand_curve():
    # Points (p, r) = (1, 0.5), (0.5, 1): the monotone envelope is 0.5 on
    # (0.5, 1], with padding every 0.05 -> 0.45 * 0.5 + 0.05 * 0.75 + 0.5.
    assert mean_average_precision([1.0, 0.5], [0.5, 1.0]) == pytest.approx(
        0.7625, abs=1e-6)
    assert mean_average_precision([1.0], [1.0]) == pytest.approx(1.0)
    assert mean_average_precision([1.0], [0.0]) == 0.0
    assert mean_average_precision([], []) == 0.0


def test_range_breakdown():
    v = TYPE_VEHICLE
    boxes = np.array([[10, 0, 0, 4.5, 2, 1.6, 0], [40, 0, 0, 4.5, 2, 1.6, 0],
                      [70, 0, 0, 4.5, 2, 1.6, 0]], float)
    # Find the near and far ones, miss the middle one.
    res = evaluate_waymo([frame(boxes[[0, 2]], [.9, .8], [v, v], boxes,
                                [v, v, v])])
    assert res[('RANGE', v, 0, 1)]['AP'] == pytest.approx(1.0)
    assert res[('RANGE', v, 1, 1)]['AP'] == 0.0
    assert res[('RANGE', v, 2, 1)]['AP'] == pytest.approx(1.0)


def test_let_tolerance():
    v = TYPE_VEHICLE
    let = LETConfig()
    s = np.array(let.sensor_location)
    g = np.array([[30.0, 5.0, 0.9, 4.5, 2.0, 1.6, 0.2]])
    ray = g[0, :3] - s
    rng = np.linalg.norm(ray)
    tol = max(0.1 * rng, 0.5)
    assert tol == pytest.approx(0.1 * rng)

    def moved(frac):
        p = g.copy()
        p[0, :3] = s + ray * (1 + frac * tol / rng)
        return p

    cfg = waymo_let_config(difficulty_levels=(1, 2))
    # Half the tolerance along the line of sight: a LET match with affinity
    # 0.5 -> LET-AP 1, LET-APL 0.5; the 3D IoU (~0.5) fails 0.7 -> 3D AP 0.
    half = moved(0.5)
    assert longitudinal_affinity(half, g, let)[0, 0] == pytest.approx(0.5)
    res = evaluate_waymo([frame(half, [0.9], [v], g, [v])], cfg)
    assert ap(res, v, 2) == pytest.approx(1.0)
    assert ap(res, v, 2, 'APL') == pytest.approx(0.5, abs=1e-5)
    assert ap(res, v, 2, 'APH') == pytest.approx(1.0)
    assert ap(evaluate_waymo([frame(half, [0.9], [v], g, [v])]),
              v) == 0.0
    # Beyond the tolerance: no match.
    res = evaluate_waymo([frame(moved(1.2), [0.9], [v], g, [v])], cfg)
    assert ap(res, v, 2) == 0.0
    # A lateral error of the same size is not tolerated (LET-IoU < 0.5).
    lateral = np.cross(ray, [0, 0, 1.0])
    lat = g.copy()
    lat[0, :3] += lateral / np.linalg.norm(lateral) * 2.2
    res = evaluate_waymo([frame(lat, [0.9], [v], g, [v])], cfg)
    assert ap(res, v, 2) == 0.0
    # Min tolerance 0.5 m applies near the sensor.
    near = np.array([[3.43, 0.0, 2.18, 4.5, 2.0, 1.6, 0.0]])  # 2 m ahead
    assert longitudinal_affinity(near + [[0.25, 0, 0, 0, 0, 0, 0]], near,
                                 let)[0, 0] == pytest.approx(0.5, abs=1e-3)


def test_clear_errors():
    with pytest.raises(ValueError, match='shape'):
        evaluate_waymo([WaymoFrame(np.zeros((1, 6)), [1.0], [1], EMPTY, [],
                                   [])])
    with pytest.raises(ValueError, match='Waymo types'):
        evaluate_waymo([frame(CAR, [0.9], [7], CAR, [1])])
    with pytest.raises(ValueError, match='breakdown'):
        waymo_3d_config(breakdowns=('SIZE', ))


# ------------------------------------------------- metric, real frames ---- #
@pytest.fixture(scope='module')
def mmdet3d():
    return pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')


def _waymo_dataset(waymo_test_root, tmp_path, ann_name='waymo_infos_val.pkl'):
    """mmdet3d WaymoDataset over the shared frames; the infos name the images
    ``*.jpg`` while the files are ``.png``, so the frames are copied to
    tmp_path under the expected names (never into the repository)."""
    from mmdet3d.datasets import WaymoDataset
    from mmdet3d.utils import register_all_modules
    from mmengine.fileio import load
    register_all_modules(init_default_scope=True)
    ann = waymo_test_root / 'kitti_format' / ann_name
    root = tmp_path / 'waymo'
    img_dir = root / 'training' / 'image_0'
    img_dir.mkdir(parents=True)
    for info in load(str(ann))['data_list']:
        name = info['images']['CAM_FRONT']['img_path']
        src = waymo_test_root / 'kitti_format' / 'training' / 'image_0' / (
            name.rsplit('.', 1)[0] + '.png')
        shutil.copy(src, img_dir / name)
    pipeline = [
        dict(type='LoadImageFromFileMono3D'),
        dict(
            type='LoadAnnotations3D',
            with_bbox=True,
            with_label=True,
            with_bbox_3d=True,
            with_label_3d=True,
            with_bbox_depth=True),
        dict(
            type='Pack3DDetInputs',
            keys=['img', 'gt_bboxes_3d', 'gt_labels_3d'],
            meta_keys=[
                'box_type_3d', 'img_shape', 'cam2img', 'scale_factor',
                'sample_idx', 'context_name', 'timestamp', 'lidar2cam'
            ]),
    ]
    ds = WaymoDataset(
        data_root=str(root),
        ann_file=str(ann),
        data_prefix=dict(
            pts='training/velodyne', CAM_FRONT='training/image_0'),
        pipeline=pipeline,
        modality=dict(use_lidar=False, use_camera=True),
        metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
        box_type_3d='Camera',
        load_type='fov_image_based',
        cam_sync_instances=False,
        filter_empty_gt=False,
        test_mode=False)
    return ds, ann


def _run_metric(metric, samples):
    metric.process({}, [s.to_dict() for s in samples])
    return metric.compute_metrics(metric.results)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_metric_on_real_waymo_frames(mmdet3d, waymo_test_root, tmp_path,
                                     split):
    from mmengine.structures import InstanceData

    from ddml.evaluation import WaymoMono3DMetric
    ds, ann = _waymo_dataset(waymo_test_root, tmp_path,
                             f'waymo_infos_{split}.pkl')
    assert len(ds) == 1
    item = ds[0]
    sample = item['data_samples']
    assert item['inputs']['img'].shape[-2:] == (1280, 1920)
    gt = sample.gt_instances_3d
    assert len(gt.bboxes_3d) >= 1
    metric = WaymoMono3DMetric(ann_file=str(ann))
    metric.dataset_meta = ds.metainfo

    def predict(boxes, scores):
        s = sample.clone()
        s.pred_instances_3d = InstanceData(
            bboxes_3d=boxes,
            scores_3d=scores,
            labels_3d=gt.labels_3d.clone())
        return s

    # Perfect prediction: AP = APH = LET-AP = 1 for the class present.
    import torch
    res = _run_metric(metric, [predict(gt.bboxes_3d.clone(),
                                       torch.ones(len(gt)))])
    car = 'Vehicle'
    assert set(ds.metainfo['classes']) == {'Pedestrian', 'Cyclist', 'Car'}
    for key in (f'{car}/LEVEL_1/AP', f'{car}/LEVEL_1/APH',
                f'{car}/LEVEL_2/AP', f'{car}/LEVEL_2/LET-AP',
                f'{car}/LEVEL_2/LET-APL'):
        assert res[key] == pytest.approx(1.0, abs=1e-6), key
    assert res['Overall/LEVEL_2/mAPH'] == pytest.approx(1 / 3, abs=1e-6)
    # Through mmengine's evaluate(): keys get the 'Waymo/' prefix.
    m = WaymoMono3DMetric(ann_file=str(ann))
    m.dataset_meta = ds.metainfo
    m.process({}, [predict(gt.bboxes_3d.clone(),
                           torch.ones(len(gt))).to_dict()])
    out = m.evaluate(1)
    assert out['Waymo/Vehicle/LEVEL_1/AP'] == pytest.approx(1.0)
    assert 'Waymo/Vehicle/LEVEL_2/Range_50m-inf/APH' in out
    assert 'Waymo/Overall/LEVEL_2/LET-mAPL' in out
    # Perturbed: 8 % too far along the line of sight - 3D AP fails the 0.7
    # IoU, LET still matches with affinity ~0.2 (tolerance 10 %).
    far = gt.bboxes_3d.clone()
    far.tensor[:, :3] *= 1.08
    metric.results.clear()
    res = _run_metric(metric, [predict(far, torch.ones(len(gt)))])
    assert res[f'{car}/LEVEL_1/AP'] == 0.0
    assert res[f'{car}/LEVEL_2/LET-AP'] == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < res[f'{car}/LEVEL_2/LET-APL'] < 0.5
    # Small lateral noise (0.2 m): still a match.
    near = gt.bboxes_3d.clone()
    near.tensor[:, 0] += 0.2
    metric.results.clear()
    res = _run_metric(metric, [predict(near, torch.full((len(gt), ), .6))])
    assert res[f'{car}/LEVEL_1/AP'] == pytest.approx(1.0, abs=1e-6)
    assert all(np.isfinite(list(res.values())))
    if split == 'train':
        # The train info is self-consistent: LiDAR instances and camera-
        # synced boxes, restricted to the camera, are the same object.
        for src in ('instances', 'cam_sync_instances'):
            m = WaymoMono3DMetric(ann_file=str(ann), gt_source=src)
            m.dataset_meta = ds.metainfo
            res = _run_metric(m, [predict(gt.bboxes_3d.clone(),
                                          torch.ones(len(gt)))])
            assert res[f'{car}/LEVEL_1/AP'] == pytest.approx(1.0), src


def test_metric_gt_matches_lidar_instances(mmdet3d, waymo_test_root):
    """cam_instances converted back to the vehicle frame agree with the
    frame's LiDAR instances where both exist (train info)."""
    import torch
    from mmdet3d.structures import (Box3DMode, CameraInstance3DBoxes,
                                    LiDARInstance3DBoxes)
    from mmengine.fileio import load

    from ddml.evaluation.waymo_metric import _cam_to_waymo, _lidar_to_waymo
    info = load(str(waymo_test_root / 'kitti_format' /
                    'waymo_infos_train.pkl'))['data_list'][0]
    lidar2cam = np.array(info['images']['CAM_FRONT']['lidar2cam'])
    lid = LiDARInstance3DBoxes(
        torch.tensor([i['bbox_3d'] for i in info['instances']]))
    cam = lid.convert_to(Box3DMode.CAM,
                         torch.tensor(lidar2cam, dtype=torch.float32),
                         correct_yaw=True)
    back = _cam_to_waymo(CameraInstance3DBoxes(cam.tensor.double()),
                         lidar2cam)
    ref = _lidar_to_waymo(lid)
    np.testing.assert_allclose(back[:, :6], ref[:, :6], atol=1e-3)
    dyaw = (back[:, 6] - ref[:, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dyaw, 0, atol=1e-3)


def test_metric_rejects_bad_config(mmdet3d, waymo_test_root):
    from ddml.evaluation import WaymoMono3DMetric
    with pytest.raises(ValueError, match='load_type'):
        WaymoMono3DMetric(ann_file='x.pkl', load_type='mv_image_based')
    with pytest.raises(ValueError, match='metrics'):
        WaymoMono3DMetric(ann_file='x.pkl', metrics=('2d', ))
    with pytest.raises(ValueError, match='cam_instances'):
        WaymoMono3DMetric(
            ann_file='x.pkl', load_type='frame_based',
            gt_source='cam_instances')


def test_metric_registered(mmdet3d):
    from mmdet3d.registry import METRICS

    import ddml  # noqa: F401
    assert METRICS.get('WaymoMono3DMetric') is not None


def test_intrinsics_image_shape_follows_the_resize():
    """AffineResize keeps cam2img of the original image (ori_shape);
    Resize3D scales cam2img with the image (img_shape). Taking img_shape
    after an affine resize dropped in-image predictions (ground truth fed
    back scored AP 0.70)."""
    from mmdet3d.structures import Det3DDataSample
    from ddml.evaluation.waymo_metric import intrinsics_image_shape
    affine = Det3DDataSample(metainfo=dict(
        img_shape=(192, 288), ori_shape=(427, 640),
        trans_mat=np.eye(3)))
    assert tuple(intrinsics_image_shape(affine)) == (427, 640)
    resized = Det3DDataSample(metainfo=dict(img_shape=(832, 1248),
                                            ori_shape=(1280, 1920)))
    assert tuple(intrinsics_image_shape(resized)) == (832, 1248)
    assert tuple(intrinsics_image_shape(
        dict(img_shape=(5, 6), trans_mat=np.eye(3)))) == (5, 6)
    assert intrinsics_image_shape({}) is None
