"""WaymoMono3DMetric end to end against Waymo's own op (issue 16, item 1).

Camera-frame boxes as mmdet3d's monocular detectors predict them
(``CameraInstance3DBoxes``: bottom centre, sizes ``(l, h, w)``, yaw about
the camera's y axis, float32) and the ``cam_instances`` of a Waymo info
file go through :class:`WaymoMono3DMetric` (``process`` -> ``evaluate``).
The same boxes are converted to Waymo's vehicle frame *here*, without the
metric's conversion: the eight corners in the camera frame, moved to the
vehicle frame by solving with the info's ``lidar2cam``, then length, width,
height, heading and centre read off the corners.  Waymo's
``detection_metrics`` op (the oracle environment of
``tools/setup_waymo_oracle.sh``) evaluates those, and every figure the
metric reports must agree: AP / APH at LEVEL_1 and LEVEL_2 per type and
range bin, LET-AP / APL / APH at LEVEL_2, and the means over types.

The centre read off the corners is the bottom face's centre raised by
``h / 2`` along the vehicle's z axis.  mmdet3d's Waymo converter made the
camera labels by moving an upright box's bottom centre into the camera
frame, so that is what a camera box stands for; for a level camera it is
the mean of the eight corners (checked below), for a tilted one the two
differ by ``h / 2 * sin(tilt)``.

The cases are those a shared conversion, or the numpy core alone, would
not notice: predicted heights and vertical positions that differ from the
ground truth's (gravity versus bottom centre), boxes within 5 m of the LET
sensor (the 0.5 m minimum of the longitudinal tolerance), boxes exactly at
30 m and 50 m from the vehicle origin (range bins ``[0, 30)``, ``[30,
50)``), headings flipped by pi, cameras yawed, tilted and level, a
prediction outside the image, and ground truth without LiDAR points.
"""
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ORACLE_VENV = Path(
    os.environ.get('DDML_WAYMO_ORACLE_VENV',
                   Path.home() / '.cache' / 'ddml' / 'waymo-oracle-venv'))
TOL = 1e-4

#: Class order of the info files (``bbox_label_3d``), mmdet3d's converter.
INFO_CLASSES = ('Car', 'Pedestrian', 'Cyclist')
#: Class order of the dataset (``labels_3d`` of the predictions).
DATASET_CLASSES = ('Pedestrian', 'Cyclist', 'Car')
WAYMO_TYPE = {'Car': 1, 'Pedestrian': 2, 'Cyclist': 4}
TYPE_NAME = {1: 'Vehicle', 2: 'Pedestrian', 4: 'Cyclist'}
RANGE_NAMES = ('0-30m', '30-50m', '50m-inf')
#: Typical (length, width, height) per info class.
SIZES = {'Car': (4.5, 2.0, 1.6), 'Pedestrian': (0.9, 0.9, 1.8),
         'Cyclist': (1.8, 0.8, 1.7)}
LET_SENSOR = np.array([1.43, 0.0, 2.18])
IMG_H, IMG_W = 1280, 1920
CAM2IMG = np.array([[2000.0, 0.0, 960.0, 0.0], [0.0, 2000.0, 640.0, 0.0],
                    [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
CFG_3D = dict(iou_thresholds=[0.7, 0.5, 0.5, 0.5], levels=[1, 2],
              breakdowns=['OBJECT_TYPE', 'RANGE'])
CFG_LET = dict(iou_thresholds=[0.5, 0.3, 0.3, 0.3], levels=[2],
               breakdowns=['OBJECT_TYPE', 'RANGE'],
               let=dict(longitudinal_tolerance_percentage=0.1,
                        min_longitudinal_tolerance_meter=0.5,
                        sensor_location=LET_SENSOR.tolist()))


# ------------------------------------------------------------------ #
# geometry, written here (not the metric's, not mmdet3d's)
# ------------------------------------------------------------------ #
def extrinsic(position, yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    """``lidar2cam`` of a camera at ``position`` (vehicle frame, m) looking
    along the vehicle's x axis turned by yaw (about z), pitch (about y) and
    roll (about x); the camera's x points right, y down, z forward."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), \
        math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    body = rz @ ry @ rx  # camera body axes in the vehicle frame
    axes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    rot = axes @ body.T
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ np.asarray(position, dtype=np.float64)
    return out


def camera_corners(cam: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Eight corners of camera boxes and their (front, left, top) signs.

    Args:
        cam (np.ndarray): (N, 7) ``(x, y, z, l, h, w, ry)``, bottom centre;
            the length runs along ``(cos ry, 0, -sin ry)``, the height up
            (-y).

    Returns:
        tuple: (N, 8, 3) corners and (8, 3) signs (+-1 front/back, +-1
        left/right, 1 top / 0 bottom).
    """
    cam = np.asarray(cam, np.float64).reshape(-1, 7)
    signs = np.array([(f, s, t) for f in (1, -1) for s in (1, -1)
                      for t in (1, 0)], dtype=np.float64)
    ry = cam[:, 6]
    along = np.stack([np.cos(ry), 0 * ry, -np.sin(ry)], 1)
    across = np.stack([np.sin(ry), 0 * ry, np.cos(ry)], 1)
    up = np.array([0.0, -1.0, 0.0])
    corners = (cam[:, None, :3] +
               signs[None, :, 0:1] * 0.5 * cam[:, None, 3:4] * along[:, None]
               + signs[None, :, 1:2] * 0.5 * cam[:, None, 5:6] *
               across[:, None] + signs[None, :, 2:3] * cam[:, None, 4:5] *
               up[None, None])
    return corners, signs


def camera_to_waymo(cam: np.ndarray, lidar2cam: np.ndarray) -> np.ndarray:
    """Camera boxes -> Waymo boxes (gravity centre) through the corners.

    Args:
        cam (np.ndarray): (N, 7) camera boxes (see :func:`camera_corners`).
        lidar2cam (np.ndarray): (4, 4) vehicle-to-camera transform.

    Returns:
        np.ndarray: (N, 7) ``(cx, cy, cz, l, w, h, heading)``.
    """
    corners, signs = camera_corners(cam)
    if len(corners) == 0:
        return np.zeros((0, 7))
    hom = np.concatenate([corners, np.ones(corners.shape[:2] + (1, ))], -1)
    veh = np.linalg.solve(np.asarray(lidar2cam, np.float64),
                          hom.reshape(-1, 4).T).T[:, :3].reshape(-1, 8, 3)

    def face(axis, value):
        return veh[:, signs[:, axis] == value].mean(1)

    length_vec = face(0, 1) - face(0, -1)
    width = np.linalg.norm(face(1, 1) - face(1, -1), axis=1)
    height = np.linalg.norm(face(2, 1) - face(2, 0), axis=1)
    bottom = face(2, 0)
    centre = bottom + np.stack([0 * height, 0 * height, height / 2], 1)
    heading = np.arctan2(length_vec[:, 1], length_vec[:, 0])
    return np.concatenate([
        centre,
        np.linalg.norm(length_vec, axis=1)[:, None], width[:, None],
        height[:, None], heading[:, None]
    ], 1)


def waymo_to_camera(boxes: np.ndarray, lidar2cam: np.ndarray) -> np.ndarray:
    """Waymo boxes -> camera boxes, for a level camera (no pitch/roll)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    rot, t = lidar2cam[:3, :3], lidar2cam[:3, 3]
    assert np.allclose(rot[1], [0, 0, -1]), 'level cameras only'
    bottom = boxes[:, :3] - np.stack(
        [0 * boxes[:, 5], 0 * boxes[:, 5], boxes[:, 5] / 2], 1)
    xyz = bottom @ rot.T + t
    direction = np.stack(
        [np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), 0 * boxes[:, 6]], 1)
    d_cam = direction @ rot.T
    ry = np.arctan2(-d_cam[:, 2], d_cam[:, 0])
    return np.concatenate(
        [xyz, boxes[:, [3]], boxes[:, [5]], boxes[:, [4]], ry[:, None]], 1)


def in_image(cam: np.ndarray, cam2img: np.ndarray,
             img_shape: Tuple[int, int]) -> np.ndarray:
    """Whether the projected corners' 2D box meets the image (boxes with
    every corner in front of the camera)."""
    corners, _ = camera_corners(cam)
    if len(corners) == 0:
        return np.zeros(0, bool)
    assert (corners[..., 2] > 0.1).all(), 'a corner behind the camera'
    k = np.asarray(cam2img, np.float64)[:3, :3]
    uvw = corners @ k.T
    uv = uvw[..., :2] / uvw[..., 2:]
    lo, hi = uv.min(1), uv.max(1)
    return ((lo[:, 0] < img_shape[1]) & (lo[:, 1] < img_shape[0]) &
            (hi[:, 0] > 0) & (hi[:, 1] > 0))


# ------------------------------------------------------------------ #
# scenes (camera frame)
# ------------------------------------------------------------------ #
class Frame:
    """One frame: its camera, ground truth and predictions."""

    def __init__(self, name: str, lidar2cam: np.ndarray,
                 cam2img: np.ndarray = CAM2IMG,
                 img_shape: Tuple[int, int] = (IMG_H, IMG_W),
                 sample_has_lidar2cam: bool = True) -> None:
        self.name = name
        self.lidar2cam = np.asarray(lidar2cam, np.float64)
        self.cam2img = np.asarray(cam2img, np.float64)
        self.img_shape = img_shape
        self.sample_has_lidar2cam = sample_has_lidar2cam
        self.gt_cam = np.zeros((0, 7))
        self.gt_class: List[str] = []
        self.gt_points: List[int] = []
        self.pred_cam = np.zeros((0, 7))
        self.pred_class: List[str] = []
        self.pred_scores: List[float] = []
        self.info = None  # a real info to start from
        self.key = None  # (context_name, timestamp), set by write_infos

    def add_gt(self, cam, cls, points):
        self.gt_cam = np.concatenate([self.gt_cam, np.reshape(cam, (-1, 7))])
        self.gt_class += list(cls)
        self.gt_points += [int(p) for p in points]

    def add_pred(self, cam, cls, scores):
        self.pred_cam = np.concatenate(
            [self.pred_cam, np.reshape(cam, (-1, 7))])
        self.pred_class += list(cls)
        self.pred_scores += [float(s) for s in scores]


def random_objects(rng, n, depth=(4.0, 70.0)):
    """n random camera boxes of random classes, on the ground (y = 2)."""
    cls = [INFO_CLASSES[i] for i in rng.integers(0, 3, n)]
    size = np.array([SIZES[c] for c in cls]).reshape(n, 3) * rng.uniform(
        0.85, 1.15, (n, 3))
    z = rng.uniform(*depth, n)
    x = z * rng.uniform(-0.35, 0.35, n)
    y = 2.0 + rng.normal(0, 0.1, n)
    ry = rng.uniform(-np.pi, np.pi, n)
    cam = np.c_[x, y, z, size[:, 0], size[:, 2], size[:, 1], ry]
    return cam, cls


def perturb(rng, cam, flip_p=0.15, noise=1.0):
    """Detector-like errors: depth along the ray, lateral and vertical
    offsets, every size (height included), yaw, some headings flipped;
    ``noise`` scales the standard deviations (1: 2 % of the depth, 0.1 m,
    0.12 m, 8 %, 0.15 rad)."""
    out = np.array(cam, np.float64).reshape(-1, 7).copy()
    n = len(out)
    k = 1 + rng.normal(0, 0.02 * noise, n)
    out[:, [0, 2]] *= k[:, None]
    out[:, 0] += rng.normal(0, 0.1 * noise, n)
    out[:, 1] += rng.normal(0, 0.12 * noise, n)
    out[:, 2] += rng.normal(0, 0.1 * noise, n)
    out[:, 3:6] *= np.exp(rng.normal(0, 0.08 * noise, (n, 3)))
    out[:, 6] += rng.normal(0, 0.15 * noise, n)
    out[rng.random(n) < flip_p, 6] += np.pi
    return out


def add_random_scene(frame, rng, n_gt, n_fp=2, recall=0.85, tie=False,
                     noise=1.0):
    gt, cls = random_objects(rng, n_gt)
    frame.add_gt(gt, cls, rng.choice([0, 2, 5, 6, 40, 300], n_gt))
    hit = rng.random(n_gt) < recall
    pred_cls = [c if rng.random() > 0.05 else INFO_CLASSES[rng.integers(3)]
                for c, h in zip(cls, hit, strict=True) if h]
    fp, fp_cls = random_objects(rng, n_fp)
    scores = rng.random(int(hit.sum()) + n_fp)
    if tie:
        scores = np.round(scores * 4) / 4
    frame.add_pred(np.r_[perturb(rng, gt[hit], noise=noise), fp],
                   pred_cls + fp_cls, scores)


def along_ray(cam, delta):
    """Camera boxes moved by ``delta`` m away from the camera centre."""
    out = np.array(cam, np.float64).reshape(-1, 7).copy()
    centre = out[:, :3].copy()
    centre[:, 1] -= out[:, 4] / 2
    unit = centre / np.linalg.norm(centre, axis=1, keepdims=True)
    out[:, :3] += np.asarray(delta).reshape(-1, 1) * unit
    return out


LEVEL_YAWED = extrinsic((1.5, 0.1, 2.1), yaw=0.25)
TILTED = extrinsic((1.45, -0.05, 2.15), yaw=-0.1, pitch=0.03, roll=-0.02)
# A level, unturned camera with dyadic offsets: the conversion is exact in
# float32, so boxes put at 30 m / 50 m stay exactly there.
EXACT = extrinsic((1.5, 0.0, 2.0))


def near_sensor_frame(name, lidar2cam):
    """Pedestrians, cyclists and a car within 5 m of the LET sensor,
    predicted too far / too near along the line of sight by 0.1-0.48 m
    (within the 0.5 m minimum tolerance, beyond 10 % of their range)."""
    fr = Frame(name, lidar2cam)
    gt = np.array([
        [-0.6, 2.0, 2.6, 0.9, 1.8, 0.9, 0.3],
        [0.7, 2.0, 3.0, 0.9, 1.8, 0.9, -1.2],
        [-1.2, 2.0, 3.6, 1.8, 1.7, 0.8, 1.5],
        [1.5, 2.0, 3.3, 1.8, 1.7, 0.8, 0.1],
        [0.3, 2.0, 4.6, 4.5, 1.6, 2.0, -1.5],
    ])
    cls = ['Pedestrian', 'Pedestrian', 'Cyclist', 'Cyclist', 'Car']
    fr.add_gt(gt, cls, [40, 4, 60, 200, 300])
    pred = along_ray(gt, [0.12, -0.3, 0.42, -0.48, 0.35])
    fr.add_pred(pred, cls, [0.9, 0.8, 0.7, 0.6, 0.5])
    # a second, better-placed pedestrian prediction (lower score)
    fr.add_pred(along_ray(gt[:1], 0.05), ['Pedestrian'], [0.3])
    return fr


def range_edge_frames():
    """Boxes (and exact predictions) centred exactly 30 m and 50 m from
    the vehicle origin; a prediction of a box at 30 m from 29.8 m."""
    frames = []
    for name, boxes, cls in (
            ('edge_30m', [[30.0, 0.0, 0.0, 4.5, 2.0, 1.5, 0.3],
                          [28.0, 10.0, 4.0, 0.875, 0.875, 1.75, 1.0]],
             ['Car', 'Pedestrian']),
            ('edge_50m', [[50.0, 0.0, 0.0, 4.5, 2.0, 1.5, -2.8],
                          [48.0, 14.0, 0.0, 1.75, 0.75, 1.75, 0.6]],
             ['Car', 'Cyclist'])):
        fr = Frame(name, EXACT)
        wb = np.array(boxes)
        cam = waymo_to_camera(wb, EXACT)
        back = camera_to_waymo(cam, EXACT)
        np.testing.assert_allclose(back, wb, atol=1e-9)
        fr.add_gt(cam, cls, [100, 100])
        fr.add_pred(cam, cls, [0.8, 0.7])
        frames.append(fr)
    fr = Frame('edge_30m_near_miss', EXACT, sample_has_lidar2cam=False)
    wb = np.array([[30.0, 0.0, 0.0, 4.5, 2.0, 1.5, 0.9]])
    fr.add_gt(waymo_to_camera(wb, EXACT), ['Car'], [100])
    wb[0, 0] = 29.8
    fr.add_pred(waymo_to_camera(wb, EXACT), ['Car'], [0.6])
    frames.append(fr)
    return frames


def heading_frame():
    """Exact boxes with headings flipped by pi or turned by pi / 2."""
    fr = Frame('headings', LEVEL_YAWED, sample_has_lidar2cam=False)
    gt = np.array([[1.0, 2.0, 15.0, 4.5, 1.6, 2.0, 0.4],
                   [-2.0, 2.0, 10.0, 0.9, 1.8, 0.9, -0.7],
                   [3.0, 2.0, 22.0, 1.8, 1.7, 0.8, 2.0],
                   [-4.0, 2.0, 30.0, 4.6, 1.5, 1.9, -2.9]])
    cls = ['Car', 'Pedestrian', 'Cyclist', 'Car']
    fr.add_gt(gt, cls, [100, 100, 100, 3])
    pred = gt.copy()
    pred[:, 6] += [np.pi, np.pi, np.pi / 2, -np.pi]
    fr.add_pred(pred, cls, [0.9, 0.8, 0.7, 0.6])
    return fr


def synthetic_frames() -> List[Frame]:
    frames = []
    rng = np.random.default_rng(2016)
    for k in range(4):
        fr = Frame(f'random_yawed_{k}', LEVEL_YAWED,
                   sample_has_lidar2cam=bool(k % 2))
        add_random_scene(fr, rng, int(rng.integers(6, 14)), tie=k == 1,
                         noise=0.4 if k < 2 else 1.0)
        frames.append(fr)
    for k in range(4):
        fr = Frame(f'random_tilted_{k}', TILTED,
                   sample_has_lidar2cam=bool(k % 2))
        add_random_scene(fr, rng, int(rng.integers(6, 14)), tie=k == 2,
                         noise=0.4 if k < 2 else 1.0)
        frames.append(fr)
    # a prediction far to the left, out of the image: the metric drops it
    out = np.array([[-40.0, 2.0, 12.0, 4.5, 1.6, 2.0, 0.0]])
    assert not in_image(out, CAM2IMG, (IMG_H, IMG_W))[0]
    frames[0].add_pred(out, ['Car'], [0.95])
    frames.append(near_sensor_frame('near_sensor_tilted', TILTED))
    frames.append(near_sensor_frame('near_sensor_level', LEVEL_YAWED))
    frames.extend(range_edge_frames())
    frames.append(heading_frame())
    return frames


# ------------------------------------------------------------------ #
# the two evaluations
# ------------------------------------------------------------------ #
def _lidar_instance(waymo_box, cls, points):
    """An info ``instances`` entry (mmdet3d LiDAR box: bottom centre)."""
    b = np.asarray(waymo_box, np.float64).copy()
    b[2] -= b[5] / 2
    return dict(bbox_3d=b.tolist(), bbox_label_3d=INFO_CLASSES.index(cls),
                num_lidar_pts=int(points))


def write_infos(frames: List[Frame], path: Path) -> None:
    """An mmdet3d v2 Waymo info file: ``cam_instances`` (camera boxes,
    without point counts, as mmdet3d writes them) and ``instances`` (LiDAR
    boxes with ``num_lidar_pts``)."""
    from mmengine.fileio import dump
    data_list = []
    for i, fr in enumerate(frames):
        if fr.info is not None:
            info = fr.info
        else:
            info = dict(
                sample_idx=i, context_name=f'ctx_{fr.name}',
                timestamp=1000 + i,
                images=dict(CAM_FRONT=dict(
                    img_path=f'{i}.jpg', height=fr.img_shape[0],
                    width=fr.img_shape[1],
                    lidar2cam=fr.lidar2cam.tolist(),
                    cam2img=fr.cam2img.tolist())),
                cam_instances=dict(CAM_FRONT=[]), instances=[])
        n_real = len(info['cam_instances']['CAM_FRONT'])
        wboxes = camera_to_waymo(fr.gt_cam, fr.lidar2cam)
        for k in range(n_real, len(fr.gt_cam)):
            lab = INFO_CLASSES.index(fr.gt_class[k])
            info['cam_instances']['CAM_FRONT'].append(
                dict(bbox_3d=fr.gt_cam[k].tolist(), bbox_label_3d=lab,
                     bbox_label=lab, depth=float(fr.gt_cam[k, 2])))
            info['instances'].append(
                _lidar_instance(wboxes[k], fr.gt_class[k],
                                fr.gt_points[k]))
        fr.key = (info['context_name'], info['timestamp'])
        data_list.append(info)
    dump(dict(metainfo=dict(dataset='waymo'), data_list=data_list),
         str(path))


def run_metric(frames: List[Frame], ann_file: Path) -> Dict[str, float]:
    """The metric's figures (without the ``Waymo/`` prefix)."""
    import torch
    from mmdet3d.structures import CameraInstance3DBoxes

    from ddml.evaluation import WaymoMono3DMetric
    metric = WaymoMono3DMetric(ann_file=str(ann_file))
    metric.dataset_meta = dict(classes=DATASET_CLASSES)
    samples = []
    for fr in frames:
        sample = dict(
            context_name=fr.key[0], timestamp=fr.key[1],
            cam2img=fr.cam2img.tolist(), img_shape=fr.img_shape,
            pred_instances_3d=dict(
                bboxes_3d=CameraInstance3DBoxes(
                    torch.tensor(fr.pred_cam, dtype=torch.float32)),
                scores_3d=torch.tensor(fr.pred_scores),
                labels_3d=torch.tensor(
                    [DATASET_CLASSES.index(c) for c in fr.pred_class],
                    dtype=torch.long)))
        if fr.sample_has_lidar2cam:
            sample['lidar2cam'] = fr.lidar2cam.tolist()
        samples.append(sample)
    metric.process({}, samples[:len(samples) // 2])
    metric.process({}, samples[len(samples) // 2:])
    out = metric.evaluate(len(samples))
    assert all(k.startswith('Waymo/') for k in out)
    return {k[len('Waymo/'):]: v for k, v in out.items()}


def oracle_frames(frames: List[Frame]) -> List[dict]:
    """The frames as Waymo's op sees them, converted here."""
    out = []
    for fr in frames:
        keep = in_image(fr.pred_cam, fr.cam2img, fr.img_shape)
        pb = camera_to_waymo(fr.pred_cam[keep], fr.lidar2cam)
        gb = camera_to_waymo(fr.gt_cam, fr.lidar2cam)
        out.append(dict(
            pred_boxes=pb.tolist(),
            pred_scores=np.asarray(fr.pred_scores)[keep].tolist(),
            pred_types=[WAYMO_TYPE[c] for c, k in
                        zip(fr.pred_class, keep, strict=True) if k],
            gt_boxes=gb.tolist(),
            gt_types=[WAYMO_TYPE[c] for c in fr.gt_class],
            gt_num_points=list(fr.gt_points)))
    return out


def _oracle_python() -> Path:
    py = ORACLE_VENV / 'bin' / 'python'
    if not py.exists():
        pytest.skip(f'Waymo oracle environment not found at {ORACLE_VENV} '
                    '(build it with tools/setup_waymo_oracle.sh, i.e. '
                    '`make waymo-oracle`, or set DDML_WAYMO_ORACLE_VENV)')
    return py


def run_oracle(frames: List[Frame], tmp_path: Path) -> Dict[str, float]:
    """Waymo's figures, named as the metric names its own."""
    py = _oracle_python()
    converted = oracle_frames(frames)
    cases = [dict(name='3d', config=CFG_3D, frames=converted),
             dict(name='let', config=CFG_LET, frames=converted)]
    case_file, result_file = tmp_path / 'cases.json', tmp_path / 'out.json'
    case_file.write_text(json.dumps(dict(cases=cases)))
    proc = subprocess.run(
        [str(py), str(REPO / 'tools' / 'waymo_oracle_eval.py'),
         str(case_file), str(result_file)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f'oracle failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}')
    results = json.loads(result_file.read_text())['results']
    out: Dict[str, float] = {}
    for case, prefix, names in (('3d', '', ('AP', 'APH')),
                                ('let', 'LET-', ('AP', 'APL', 'APH'))):
        for row in results[case]:
            if row['breakdown'] == 'OBJECT_TYPE':
                wtype, where = row['shard'] + 1, ''
            else:
                wtype = row['shard'] // 3 + 1
                where = f'Range_{RANGE_NAMES[row["shard"] % 3]}/'
            if wtype not in TYPE_NAME:
                continue  # signs: not a class of the dataset
            for name in names:
                out[f'{TYPE_NAME[wtype]}/LEVEL_{row["level"]}/{where}'
                    f'{prefix}{name}'] = row[name]
        levels = CFG_3D['levels'] if case == '3d' else CFG_LET['levels']
        for lv in levels:
            for name in names:
                out[f'Overall/LEVEL_{lv}/{prefix}m{name}'] = float(
                    np.mean([
                        out[f'{TYPE_NAME[t]}/LEVEL_{lv}/{prefix}{name}']
                        for t in TYPE_NAME
                    ]))
    return out


def compare(ours: Dict[str, float], waymo: Dict[str, float]) -> int:
    assert set(ours) == set(waymo), (
        f'only ours: {sorted(set(ours) - set(waymo))[:10]}, only '
        f'Waymo: {sorted(set(waymo) - set(ours))[:10]}')
    bad = [f'{k}: metric {ours[k]:.6f} waymo {waymo[k]:.6f}'
           for k in sorted(ours) if abs(ours[k] - waymo[k]) > TOL]
    assert not bad, f'{len(bad)} of {len(ours)} figures differ:\n' + \
        '\n'.join(bad[:60])
    return sum(0.0 < v < 1.0 - 1e-6 for v in waymo.values())


def _sensor_range(frame: Frame) -> np.ndarray:
    wb = camera_to_waymo(frame.gt_cam, frame.lidar2cam)
    return np.linalg.norm(wb[:, :3] - LET_SENSOR, axis=1)


# ------------------------------------------------------------------ #
# tests
# ------------------------------------------------------------------ #
def test_independent_conversion_is_consistent():
    """The corner route round-trips, keeps sizes, and for a level camera
    its centre is the mean of the eight corners."""
    rng = np.random.default_rng(0)
    cam, _ = random_objects(rng, 20)
    for l2c in (LEVEL_YAWED, EXACT):
        wb = camera_to_waymo(cam, l2c)
        np.testing.assert_allclose(wb[:, 3:6], cam[:, [3, 5, 4]], atol=1e-9)
        np.testing.assert_allclose(waymo_to_camera(wb, l2c)[:, :6],
                                   cam[:, :6], atol=1e-9)
        corners, _ = camera_corners(cam)
        hom = np.concatenate([corners, np.ones((20, 8, 1))], -1)
        veh = np.einsum('ij,nkj->nki', np.linalg.inv(l2c), hom)[..., :3]
        np.testing.assert_allclose(wb[:, :3], veh.mean(1), atol=1e-9)
    # a tilted camera: the centre is the bottom centre raised along the
    # vehicle's z, not the rigid centroid (they differ by h/2 sin(tilt))
    wb = camera_to_waymo(cam, TILTED)
    bottom = np.linalg.solve(TILTED, np.c_[cam[:, :3], np.ones(20)].T).T
    np.testing.assert_allclose(wb[:, :2], bottom[:, :2], atol=1e-9)
    np.testing.assert_allclose(wb[:, 2], bottom[:, 2] + cam[:, 4] / 2,
                               atol=1e-9)


@pytest.mark.oracle
def test_metric_end_to_end_matches_waymo_op(tmp_path):
    pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')
    _oracle_python()
    frames = synthetic_frames()
    ann = tmp_path / 'waymo_infos_val.pkl'
    write_infos(frames, ann)
    # the cases are there
    near = np.concatenate([_sensor_range(f) for f in frames])
    assert (near < 5.0).sum() >= 8
    # ranges as the op sees them (boxes in float32)
    edges = np.concatenate([
        np.linalg.norm(
            camera_to_waymo(f.gt_cam, f.lidar2cam)[:, :3].astype(
                np.float32).astype(np.float64),
            axis=1) for f in frames
    ])
    assert (edges == 30.0).sum() >= 3 and (edges == 50.0).sum() >= 2
    ours = run_metric(frames, ann)
    waymo = run_oracle(frames, tmp_path)
    n_nontrivial = compare(ours, waymo)
    print(f'{len(ours)} figures agree with Waymo\'s op within {TOL} '
          f'({n_nontrivial} strictly between 0 and 1)')
    assert n_nontrivial >= 40
    # headings flipped by pi cost APH, not AP
    assert ours['Vehicle/LEVEL_1/APH'] < ours['Vehicle/LEVEL_1/AP'] - 0.05


@pytest.mark.oracle
def test_metric_end_to_end_on_real_waymo_infos(waymo_test_root, tmp_path):
    """The real frames' infos (their extrinsics and intrinsics, tilted by a
    few milliradians, and their ground truth), with objects added in their
    cameras, and predictions."""
    pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')
    _oracle_python()
    from mmengine.fileio import load
    rng = np.random.default_rng(7)
    frames = []
    for split in ('train', 'val'):
        info = load(str(waymo_test_root / 'kitti_format' /
                        f'waymo_infos_{split}.pkl'))['data_list'][0]
        img = info['images']['CAM_FRONT']
        fr = Frame(f'real_{split}', np.array(img['lidar2cam']),
                   np.array(img['cam2img']), (img['height'], img['width']),
                   sample_has_lidar2cam=split == 'train')
        fr.info = info
        real = info['cam_instances']['CAM_FRONT']
        real_cam = np.array([i['bbox_3d'] for i in real]).reshape(-1, 7)
        # point counts of the real boxes: the nearest LiDAR instance, or
        # unknown (none within 0.1 m), which the metric counts as LEVEL_1
        wb = camera_to_waymo(real_cam, fr.lidar2cam)
        lid = np.array([i['bbox_3d'] for i in info['instances']])
        points = []
        for box in wb:
            d = np.linalg.norm(lid[:, :2] - box[:2], axis=1)
            j = int(np.argmin(d))
            points.append(info['instances'][j]['num_lidar_pts']
                          if d[j] < 0.1 else 10**6)
        fr.add_gt(real_cam, [INFO_CLASSES[i['bbox_label_3d']] for i in real],
                  points)
        fr.add_pred(perturb(rng, real_cam, flip_p=0.0),
                    [INFO_CLASSES[i['bbox_label_3d']] for i in real],
                    rng.random(len(real)))
        add_random_scene(fr, rng, 12, noise=0.5)
        frames.append(fr)
    assert len({f.info['context_name'] for f in frames}) == 2
    ann = tmp_path / 'waymo_infos_val.pkl'
    write_infos(frames, ann)
    ours = run_metric(frames, ann)
    waymo = run_oracle(frames, tmp_path)
    n_nontrivial = compare(ours, waymo)
    print(f'{len(ours)} figures agree with Waymo\'s op within {TOL} '
          f'({n_nontrivial} strictly between 0 and 1)')
    assert n_nontrivial >= 10
