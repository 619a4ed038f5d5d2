"""Tests of the synthetic Waymo-format data (issue 22, item 1).

The infos must be what mmdet3d 1.4's Waymo converter writes (keys, value
types, the real infos of ``../shared/data`` where present), the labels exact
(cam_instances re-derived from the LiDAR-frame instances by the converter's
own steps, and against the rendered pixels), and every Waymo config of the
project must read the data with only ``data_root`` changed, its evaluator
scoring the val ground truth 1.
"""
import hashlib
import pickle
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from ddml.data_tools.synthetic_kitti import (HELDOUT_STREAM, _frame_rng,
                                             render_frame)
from ddml.data_tools.synthetic_waymo import (
    TOP_LIDAR_AZIMUTHS, TOP_LIDAR_BEAMS, TOP_LIDAR_INCLINATION_DEG,
    TOP_LIDAR_POSITION, TOP_LIDAR_RANGE, WAYMO_CLASS_PRIORS, WAYMO_CLASSES,
    WAYMO_FRONT_CAMERA_POSITION, WAYMO_FRONT_INTRINSICS, WAYMO_IMAGE_SIZE,
    WAYMO_LAYOUT, WAYMO_METAINFO, camera_to_lidar_boxes, lidar_point_counts,
    make_waymo_dataset, waymo_camera, waymo_data_prefix)

REPO = Path(__file__).resolve().parents[2]
WAYMO_CONFIGS = sorted(c for c in (REPO / 'configs').rglob('*.py')
                       if 'waymo' in c.name and '_base_' not in c.parts)
SEED, SCALE = 3, 0.25
N_TRAIN, N_VAL, N_TEST = 6, 8, 2

# What Waymo2KITTI.create_waymo_info_file of mmdet3d 1.4 writes (key order
# included) for a labelled frame without sweeps.
FRAME_KEYS = [
    'sample_idx', 'timestamp', 'ego2global', 'context_name', 'images',
    'lidar_points', 'instances', 'cam_sync_instances', 'cam_instances'
]
IMAGE_KEYS = ['img_path', 'height', 'width', 'lidar2cam', 'cam2img',
              'lidar2img']
INSTANCE_KEYS = ['group_id', 'camera_id', 'bbox', 'bbox_label', 'bbox_3d',
                 'bbox_label_3d', 'num_lidar_pts']
CAM_INSTANCE_KEYS = ['bbox', 'bbox_label', 'bbox_3d', 'bbox_label_3d',
                     'center_2d', 'depth', 'bbox_3d_isvalid', 'velocity']


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO / 'configs'))


def _load(path: Path) -> dict:
    with open(path, 'rb') as f:
        return pickle.load(f)


@pytest.fixture(scope='module')
def waymo_root(tmp_path_factory) -> Path:
    """6 train, 8 val, 2 held-out frames at 480x320 (about 1 s)."""
    root = tmp_path_factory.mktemp('synthetic_waymo')
    make_waymo_dataset(root, N_TRAIN, N_VAL, seed=SEED, scale=SCALE,
                       workers=1, progress=False, num_test=N_TEST)
    return root


def _all_infos(root: Path):
    """(split, index in split, info) of every frame."""
    for split in ('train', 'val', 'test'):
        for k, info in enumerate(
                _load(root / f'waymo_infos_{split}.pkl')['data_list']):
            yield split, k, info


def _render(split: str, k: int):
    """The frame as the renderer draws it (same seed stream and index)."""
    idx = {'train': k, 'val': N_TRAIN + k, 'test': k}[split]
    stream = HELDOUT_STREAM if split == 'test' else ()
    return render_frame(_frame_rng(SEED, idx, stream), waymo_camera(SCALE),
                        WAYMO_LAYOUT, WAYMO_CLASS_PRIORS)


def test_camera_is_waymo_front_and_scales():
    cam = waymo_camera()
    assert (cam.width, cam.height) == WAYMO_IMAGE_SIZE == (1920, 1280)
    fx, fy, cx, cy = WAYMO_FRONT_INTRINSICS
    np.testing.assert_array_equal(
        cam.P, [[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0]])
    lidar2cam = cam.calib['lidar2cam']
    centre = -lidar2cam[:3, :3].T @ lidar2cam[:3, 3]
    np.testing.assert_allclose(centre, WAYMO_FRONT_CAMERA_POSITION,
                               atol=1e-12)
    # level: the vehicle frame's axes, permuted (x right = -y, y down = -z)
    np.testing.assert_array_equal(lidar2cam[:3, :3],
                                  [[0, -1, 0], [0, 0, -1], [1, 0, 0]])
    assert cam.ground_y == WAYMO_FRONT_CAMERA_POSITION[2]  # ground: z = 0
    np.testing.assert_allclose(cam.calib['lidar2img'],
                               cam.P @ lidar2cam, atol=1e-12)
    third = waymo_camera(1 / 3)
    assert (third.width, third.height) == (640, 427)
    np.testing.assert_allclose(third.P[:2], cam.P[:2] / 3, rtol=1e-15)
    np.testing.assert_array_equal(third.P[2], cam.P[2])
    np.testing.assert_array_equal(third.calib['lidar2cam'], lidar2cam)
    with pytest.raises(ValueError, match='scale'):
        waymo_camera(0)


def test_camera_is_the_real_calibration(waymo_test_root):
    """The constants are the real front camera's (mmdet3d's test info of
    training frame 0000000), and a real camera is level within ~1 deg."""
    real = _load(waymo_test_root / 'kitti_format' /
                 'waymo_infos_train.pkl')['data_list'][0]
    img = real['images']['CAM_FRONT']
    assert (img['width'], img['height']) == WAYMO_IMAGE_SIZE
    k = np.array(img['cam2img'])
    np.testing.assert_allclose(
        [k[0, 0], k[1, 1], k[0, 2], k[1, 2]], WAYMO_FRONT_INTRINSICS,
        atol=1e-3)
    lidar2cam = np.array(img['lidar2cam'], dtype=np.float64)
    centre = -lidar2cam[:3, :3].T @ lidar2cam[:3, 3]
    np.testing.assert_allclose(centre, WAYMO_FRONT_CAMERA_POSITION,
                               atol=1e-3)
    level = waymo_camera().calib['lidar2cam'][:3, :3]
    dev = lidar2cam[:3, :3] @ level.T
    angle = np.degrees(np.arccos(np.clip((np.trace(dev) - 1) / 2, -1, 1)))
    assert angle < 1.5, angle


def _schema(x):
    """Keys (in order), value types and matrix shapes of an info."""
    if isinstance(x, dict):
        return {k: _schema(v) for k, v in x.items()}
    if isinstance(x, list):
        if x and isinstance(x[0], dict):
            return [_schema(x[0])]
        if x and isinstance(x[0], list):
            return ('matrix', len(x), len(x[0]),
                    {type(v).__name__ for row in x for v in row})
        return ('list', len(x), {type(v).__name__ for v in x})
    return type(x).__name__


def test_infos_have_the_converters_keys_and_types(waymo_root):
    for split, k, info in _all_infos(waymo_root):
        assert list(info) == FRAME_KEYS
        assert list(info['images']) == ['CAM_FRONT']
        assert list(info['images']['CAM_FRONT']) == IMAGE_KEYS
        assert list(info['cam_instances']) == ['CAM_FRONT']
        assert info['instances'], (split, k)
        for inst in info['instances'] + info['cam_sync_instances']:
            assert list(inst) == INSTANCE_KEYS
        for inst in info['cam_instances']['CAM_FRONT']:
            assert list(inst) == CAM_INSTANCE_KEYS
        prefix = {'train': 0, 'val': 1, 'test': 2}[split]
        assert info['sample_idx'] == prefix * 10**6 + k
        assert info['images']['CAM_FRONT']['img_path'] == \
            f'{info["sample_idx"]:07d}.jpg'
        assert info['lidar_points'] == dict(
            lidar_path=f'{info["sample_idx"]:07d}.bin', num_pts_feats=6)
    for split in ('train', 'val', 'trainval', 'test'):
        data = _load(waymo_root / f'waymo_infos_{split}.pkl')
        assert data['metainfo'] == WAYMO_METAINFO
    keys = [(i['context_name'], i['timestamp'])
            for _, _, i in _all_infos(waymo_root)]
    assert len(set(keys)) == len(keys) == N_TRAIN + N_VAL + N_TEST
    trainval = _load(waymo_root / 'waymo_infos_trainval.pkl')['data_list']
    assert [i['sample_idx'] for i in trainval] == \
        list(range(N_TRAIN)) + [10**6 + k for k in range(N_VAL)]


def test_infos_match_the_real_infos(waymo_root, waymo_test_root):
    """Same keys, value types and matrix shapes as mmdet3d's real infos
    (their images 1920x1280; ours scaled)."""
    for split in ('train', 'val'):
        real = _load(waymo_test_root / 'kitti_format' /
                     f'waymo_infos_{split}.pkl')
        ours = _load(waymo_root / f'waymo_infos_{split}.pkl')
        assert ours['metainfo'] == real['metainfo']
        want = _schema(real['data_list'][0])
        for info in ours['data_list']:
            assert _schema(info) == want, split


def _converter_cam_instance(inst: dict, img: dict) -> dict:
    """Waymo2KITTI.gather_cam_instance_info of mmdet3d 1.4, for one box."""
    from mmdet3d.datasets.convert_utils import post_process_coords
    from mmdet3d.structures import (Box3DMode, LiDARInstance3DBoxes,
                                    points_cam2img)
    lidar2cam = np.array(img['lidar2cam'])
    cam2img = np.array(img['cam2img'])
    box = LiDARInstance3DBoxes(np.array(inst['bbox_3d'])[None]).convert_to(
        Box3DMode.CAM, lidar2cam, correct_yaw=True)
    corners = box.corners.numpy()[0].T
    corners = corners[:, corners[2] > 0]
    hom = cam2img[:3, :3] @ corners  # nuscenes' view_points, normalised
    uv = (hom[:2] / hom[2:3]).T.tolist()
    bbox = post_process_coords(uv, imsize=(img['width'], img['height']))
    centre = points_cam2img(box.gravity_center.numpy(), cam2img,
                            with_depth=True).squeeze().tolist()
    return dict(bbox=list(bbox),
                bbox_3d=box.numpy().squeeze().astype(np.float32).tolist(),
                center_2d=centre[:2], depth=centre[2])


def test_labels_are_exact(waymo_root):
    """cam_instances are what the converter derives from the LiDAR-frame
    instances through lidar2cam / cam2img, and what the pixels show."""
    pytest.importorskip('mmdet3d')
    n_obj = 0
    for split, k, info in _all_infos(waymo_root):
        img = info['images']['CAM_FRONT']
        insts = info['instances']
        cams = info['cam_instances']['CAM_FRONT']
        assert len(cams) == len(insts)
        assert [i['group_id'] for i in insts] == \
            list(range(1, len(insts) + 1))
        for inst, cam in zip(insts, cams, strict=True):
            ref = _converter_cam_instance(inst, img)
            np.testing.assert_allclose(cam['bbox'], ref['bbox'], atol=2e-3)
            np.testing.assert_allclose(cam['center_2d'], ref['center_2d'],
                                       atol=2e-3)
            assert cam['depth'] == pytest.approx(ref['depth'], abs=1e-4)
            np.testing.assert_allclose(cam['bbox_3d'][:6],
                                       ref['bbox_3d'][:6], atol=1e-4)
            dyaw = cam['bbox_3d'][6] - ref['bbox_3d'][6]
            assert abs((dyaw + np.pi) % (2 * np.pi) - np.pi) < 1e-5
            assert inst['bbox'] == cam['bbox'] and inst['camera_id'] == 0
            assert cam['bbox_label'] == cam['bbox_label_3d'] == \
                inst['bbox_label_3d']
            x, y, z, length, width, height, yaw = inst['bbox_3d']
            assert z == 0.0  # standing on the ground of the vehicle frame
            assert inst['num_lidar_pts'] >= 1
            assert 0 <= cam['bbox'][0] <= cam['bbox'][2] <= img['width']
            assert 0 <= cam['bbox'][1] <= cam['bbox'][3] <= img['height']
        sync = info['cam_sync_instances']
        assert {tuple(s['bbox_3d']) for s in sync} <= \
            {tuple(i['bbox_3d']) for i in insts}
        # Against the pixels: every painted object lies in its 2D box, the
        # nearest (never occluded) fills it; hidden ones are not synced.
        frame = _render(split, k)
        ids = [j for j, b in enumerate(frame.boxes) if any(
            np.allclose(c['bbox'], b['box2d']) for c in cams)]
        boxes = [frame.boxes[j] for j in ids]
        assert len(boxes) == len(cams)
        near = min(range(len(boxes)), key=lambda i: np.hypot(
            boxes[i]['loc'][0], boxes[i]['loc'][2]))
        for i, (b, cam) in enumerate(zip(boxes, cams, strict=True)):
            ys, xs = np.nonzero(frame.id_map == ids[i] + 1)
            x1, y1, x2, y2 = cam['bbox']
            if len(xs):
                assert x1 - 1 <= xs.min() and xs.max() <= x2 and \
                    y1 - 1 <= ys.min() and ys.max() <= y2
            if i == near:
                np.testing.assert_allclose(
                    [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                    cam['bbox'], atol=1.01)
            n_obj += 1
        assert len(sync) == sum(b['visible_pixels'] > 0 for b in boxes)
        # The JPEG is the rendered image (lossy, so close).
        from PIL import Image
        folder = 'testing' if split == 'test' else 'training'
        jpg = np.asarray(Image.open(waymo_root / folder / 'image_0' /
                                    img['img_path']).convert('RGB'))
        assert jpg.shape == (img['height'], img['width'], 3)
        assert np.abs(jpg.astype(int) - frame.image).mean() < 3.0
    assert n_obj >= 40
    classes = {WAYMO_CLASSES[c['bbox_label']] for _, _, i in
               _all_infos(waymo_root) for c in i['cam_instances']['CAM_FRONT']}
    assert classes == set(WAYMO_CLASSES)


def test_camera_to_lidar_boxes_is_mmdet3d_conversion():
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
    cam = waymo_camera(0.5)
    rng = np.random.default_rng(0)
    boxes = np.column_stack([
        rng.uniform(-10, 10, 20), np.full(20, cam.ground_y),
        rng.uniform(4, 70, 20), rng.uniform(0.5, 5, (20, 3)),
        rng.uniform(-np.pi, np.pi, 20)])
    ours = camera_to_lidar_boxes(boxes, cam.calib['lidar2cam'])
    ref = CameraInstance3DBoxes(torch.from_numpy(boxes)).convert_to(
        Box3DMode.LIDAR, np.linalg.inv(cam.calib['lidar2cam']),
        correct_yaw=True).tensor.numpy()
    np.testing.assert_allclose(ours[:, :6], ref[:, :6], atol=1e-9)
    dyaw = ours[:, 6] - ref[:, 6]
    # (mmdet3d's yaw passes float32 constants: 2e-7 rad)
    np.testing.assert_allclose((dyaw + np.pi) % (2 * np.pi) - np.pi, 0,
                               atol=1e-6)
    np.testing.assert_allclose(ours[:, 2], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match='level camera'):
        tilted = cam.calib['lidar2cam'].copy()
        tilted[:3, :3] = np.eye(3)
        camera_to_lidar_boxes(boxes, tilted)


def _front_face_hits(x_face: float, half_width: float, height: float,
                     y0: float = 0.0) -> int:
    """Rays of the scan through the face ``x = x_face``, ``|y - y0| <=
    half_width``, ``0 <= z <= height``, within range (an independent
    count for a box whose only face the LiDAR sees is that one)."""
    lo, hi = np.radians(TOP_LIDAR_INCLINATION_DEG)
    incl = np.linspace(lo, hi, TOP_LIDAR_BEAMS)[:, None]
    az = np.pi - 2 * np.pi * (np.arange(TOP_LIDAR_AZIMUTHS) + 0.5) / \
        TOP_LIDAR_AZIMUTHS
    dx = np.cos(incl) * np.cos(az)
    dy = np.cos(incl) * np.sin(az)
    dz = np.sin(incl) + 0 * az
    ox, oy, oz = TOP_LIDAR_POSITION
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (x_face - ox) / dx
    y, z = oy + t * dy, oz + t * dz
    hit = (t > 0) & (np.abs(y - y0) <= half_width) & (z >= 0) & \
        (z <= height) & (t <= TOP_LIDAR_RANGE)
    return int(hit.sum())


def test_lidar_point_counts():
    # A wall taller than the sensor, facing it: only its front face shows.
    wall = np.array([[20.0, 0.0, 0.0, 2.0, 6.0, 4.0, 0.0]])
    n = int(lidar_point_counts(wall)[0])
    assert n == _front_face_hits(19.0, 3.0, 4.0) > 500
    # Behind it, a smaller box is hidden; beside it one is seen; beyond
    # the range or with no ray reaching it, none.
    hidden = np.array([30.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.3])
    beside = np.array([20.0, 10.0, 0.0, 4.0, 2.0, 1.5, 0.3])
    far = np.array([80.0, 0.0, 0.0, 4.5, 2.0, 1.8, 0.0])
    behind = np.array([-15.0, 0.0, 0.0, 4.5, 2.0, 1.8, 0.0])
    counts = lidar_point_counts(np.stack([wall[0], hidden, beside, far,
                                          behind]))
    assert counts[0] == n and counts[1] == 0 and counts[2] > 20
    assert counts[3] == 0 and counts[4] > 20  # the scan is 360 degrees
    # A car at 60 m keeps a few tens of points (LEVEL_1), as in Waymo.
    car = np.array([[60.0, 2.0, 0.0, 4.73, 2.08, 1.77, 0.0]])
    assert 10 < lidar_point_counts(car)[0] < 200
    assert lidar_point_counts(np.zeros((0, 7))).shape == (0, )


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).digest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_deterministic_and_splits(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    make_waymo_dataset(a, 3, 1, seed=5, scale=0.125, workers=1,
                       progress=False, num_test=1)
    make_waymo_dataset(b, 3, 1, seed=5, scale=0.125, workers=2,
                       progress=False, num_test=1)
    make_waymo_dataset(c, 3, 2, seed=5, scale=0.125, workers=1,
                       progress=False)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db  # whatever the worker count
    for i in range(3):  # train frames do not depend on num_val
        key = f'training/image_0/{i:07d}.jpg'
        assert da[key] == dc[key]
    assert da['training/image_0/1000000.jpg'] == \
        dc['training/image_0/1000000.jpg']
    assert 'training/image_0/1000001.jpg' in dc
    # the held-out frame: its own stream, in testing/
    assert da['testing/image_0/2000000.jpg'] != \
        da['training/image_0/0000000.jpg']
    assert (a / 'ImageSets/train.txt').read_text().split() == [
        '0000000', '0000001', '0000002']
    assert (a / 'ImageSets/val.txt').read_text().split() == ['1000000']
    assert (a / 'ImageSets/test.txt').read_text().split() == ['2000000']
    assert not (c / 'waymo_infos_test.pkl').exists()
    with pytest.raises(FileExistsError, match='num_test'):
        make_waymo_dataset(a, 3, 1, seed=5, scale=0.125, workers=1,
                           progress=False)
    with pytest.raises(ValueError, match='num_train and num_val'):
        make_waymo_dataset(tmp_path / 'd', 0, 0)
    from ddml.data_tools.synthetic_kitti import SceneLayout
    with pytest.raises(ValueError, match='SceneLayout'):
        SceneLayout(class_probs=(('Van', 1.0), ))
    assert waymo_data_prefix('test')['CAM_FRONT'] == 'testing/image_0'
    assert waymo_data_prefix('val')['CAM_FRONT'] == 'training/image_0'
    with pytest.raises(ValueError, match='unknown Waymo info split'):
        waymo_data_prefix('holdout')


def test_cli_writes_waymo(tmp_path):
    mod = runpy.run_path(str(REPO / 'tools' / 'make_demo_dataset.py'))
    out = tmp_path / 'kitti_format'
    assert mod['main']([
        '--out', str(out), '--num-train', '2', '--num-val', '1',
        '--num-test', '1', '--scale', '0.125', '--workers', '1',
        '--format', 'waymo', '--layout', 'demo', '--no-progress'
    ]) == 0
    for split, n in (('train', 2), ('val', 1), ('trainval', 3),
                     ('test', 1)):
        infos = _load(out / f'waymo_infos_{split}.pkl')['data_list']
        assert len(infos) == n
    info = infos[0]
    assert info['images']['CAM_FRONT']['width'] == 240
    assert (out / 'testing/image_0/2000000.jpg').is_file()
    assert (out / 'training/image_0/1000000.jpg').is_file()
    assert all(c['bbox_label'] == 0 for c in  # demo layout: Cars
               info['cam_instances']['CAM_FRONT'])
    with pytest.raises(SystemExit):
        mod['main'](['--out', str(tmp_path / 'x'), '--num-train', '1',
                     '--num-val', '1', '--format', 'waymo', '--no-infos'])


def _config_dataset(config: Path, root: Path, loader: str, **overrides):
    from mmdet3d.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import ddml  # noqa: F401  (custom_imports of the configs)
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(str(config))
    ds_cfg = cfg[loader].dataset
    ds_cfg.data_root = str(root)  # the only change
    ds_cfg.update(overrides)
    return cfg, DATASETS.build(ds_cfg)


def _names(labels, classes):
    return sorted(classes[int(i)] for i in labels)


@pytest.mark.parametrize('config', WAYMO_CONFIGS, ids=_rel)
def test_waymo_dataset_reads_it(config, waymo_root):
    """Each Waymo config's own train / val / test datasets load the infos
    (fov_image_based, CAM_FRONT) and yield the objects."""
    assert len(WAYMO_CONFIGS) >= 4
    _, train = _config_dataset(config, waymo_root, 'train_dataloader')
    assert train.load_type == 'fov_image_based'
    infos = _load(waymo_root / 'waymo_infos_train.pkl')['data_list']
    interval = train.load_interval  # the config's own (3: "D3")
    infos = infos[::interval]
    assert len(train) == len(infos)
    classes = train.metainfo['classes']
    for i, info in enumerate(infos):
        cams = [c for c in info['cam_instances']['CAM_FRONT']
                if WAYMO_CLASSES[c['bbox_label_3d']] in classes]
        ann = train.get_data_info(i)['ann_info']
        np.testing.assert_allclose(
            ann['gt_bboxes_3d'].tensor.numpy(),
            np.array([c['bbox_3d'] for c in cams]).reshape(-1, 7), atol=1e-5)
        np.testing.assert_allclose(
            ann['gt_bboxes'], np.array([c['bbox'] for c in cams]),
            atol=1e-3)
        assert _names(ann['gt_labels_3d'], classes) == sorted(
            WAYMO_CLASSES[c['bbox_label_3d']] for c in cams)
    item = train[0]  # through the config's training pipeline
    gt = item['data_samples'].gt_instances_3d
    n_info = len([c for c in infos[0]['cam_instances']['CAM_FRONT']
                  if WAYMO_CLASSES[c['bbox_label_3d']] in classes])
    if any(type(t).__name__.startswith('AffineResize')
           for t in train.pipeline.transforms):
        # AffineResize (the demo configs) drops objects centred off the input
        assert 0 < len(gt) <= n_info
    else:
        assert len(gt) == n_info > 0
    assert item['inputs']['img'].shape[0] == 3

    val_infos = _load(waymo_root / 'waymo_infos_val.pkl')['data_list']
    _, val = _config_dataset(config, waymo_root, 'val_dataloader')
    assert len(val) == len(val_infos)
    _, test = _config_dataset(config, waymo_root, 'test_dataloader',
                              ann_file='waymo_infos_val.pkl')
    for i in (0, len(test) - 1):
        sample = test[i]['data_samples']
        cams = [c for c in val_infos[i]['cam_instances']['CAM_FRONT']
                if WAYMO_CLASSES[c['bbox_label_3d']] in classes]
        assert sample.metainfo['context_name'] == \
            val_infos[i]['context_name']
        np.testing.assert_allclose(
            sample.eval_ann_info['gt_bboxes_3d'].tensor.numpy(),
            np.array([c['bbox_3d'] for c in cams]).reshape(-1, 7),
            atol=1e-5)
    # the held-out split, through its data_prefix
    _, held = _config_dataset(config, waymo_root, 'test_dataloader',
                              ann_file='waymo_infos_test.pkl',
                              data_prefix=waymo_data_prefix('test'))
    assert len(held) == N_TEST
    assert held[0]['inputs']['img'].shape[0] == 3


@pytest.mark.parametrize('config', WAYMO_CONFIGS, ids=_rel)
def test_waymo_metric_scores_ground_truth_one(config, waymo_root):
    """The config's evaluator (WaymoMono3DMetric) given the val ground
    truth as predictions: AP, APH and LET-AP / APL / APH 1 for every class
    with ground truth."""
    from mmdet3d.structures import Det3DDataSample
    from mmengine.evaluator import Evaluator
    from mmengine.structures import InstanceData
    cfg, dataset = _config_dataset(config, waymo_root, 'test_dataloader')
    metric = dict(cfg.test_evaluator)
    assert metric['type'] == 'WaymoMono3DMetric'
    metric['ann_file'] = str(waymo_root / 'waymo_infos_val.pkl')
    ev = Evaluator([metric])
    ev.dataset_meta = dataset.metainfo
    classes = dataset.metainfo['classes']
    seen, rank = set(), 0
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        ann = sample.eval_ann_info
        labels = torch.as_tensor(ann['gt_labels_3d'])
        pred = Det3DDataSample(metainfo=sample.metainfo)
        n = len(labels)
        pred.pred_instances_3d = InstanceData(
            bboxes_3d=ann['gt_bboxes_3d'], labels_3d=labels,
            scores_3d=1.0 - (rank + torch.arange(n)) / 1e4)
        pred.pred_instances = InstanceData()
        rank += n
        seen.update(classes[int(c)] for c in labels)
        ev.process([pred])
    res = ev.evaluate(len(dataset))
    waymo_name = dict(Car='Vehicle', Pedestrian='Pedestrian',
                      Cyclist='Cyclist')
    assert seen == set(WAYMO_CLASSES) & set(classes)
    for cls in sorted(seen):
        name = waymo_name[cls]
        for level in (1, 2):
            for key in ('AP', 'APH'):
                assert res[f'Waymo/{name}/LEVEL_{level}/{key}'] == \
                    pytest.approx(1.0, abs=1e-6), (name, level, key)
        for key in ('LET-AP', 'LET-APL', 'LET-APH'):
            assert res[f'Waymo/{name}/LEVEL_2/{key}'] == \
                pytest.approx(1.0, abs=1e-6), (name, key)
