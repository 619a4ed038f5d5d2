"""Tests of the synthetic KITTI renderer (tools/make_demo_dataset.py)."""
import hashlib
import pickle
import runpy
from pathlib import Path

import numpy as np
import pytest

from ddml.data_tools.kitti_converter import box3d_corners_camera
from ddml.data_tools.kitti_io import read_calib_file, read_label_file
from ddml.data_tools.synthetic_kitti import (CAMERA_HEIGHT, KITTI_P2,
                                             kitti_camera, make_demo_dataset,
                                             render_frame)

REPO = Path(__file__).resolve().parents[2]


def _rng(seed, idx):
    return np.random.default_rng(np.random.SeedSequence([seed, idx]))


def _project_label_box(obj, P2, W, H):
    h, w, length = obj['dimensions']
    corners = box3d_corners_camera(
        np.array([obj['location']]), np.array([[length, h, w]]),
        np.array([obj['rotation_y']]))[0]
    hom = corners @ P2[:, :3].T + P2[:, 3]
    uv = hom[:, :2] / hom[:, 2:]
    lo = np.clip(uv.min(0), 0, [W - 1, H - 1])
    hi = np.clip(uv.max(0), 0, [W - 1, H - 1])
    return [lo[0], lo[1], hi[0], hi[1]], corners


def test_camera_is_kitti_and_scales():
    cam = kitti_camera(1.0)
    assert (cam.width, cam.height) == (1242, 375)
    np.testing.assert_array_equal(cam.P2, KITTI_P2)
    half = kitti_camera(0.5)
    assert (half.width, half.height) == (621, 188)
    np.testing.assert_allclose(half.P2[:2], KITTI_P2[:2] * 0.5)
    np.testing.assert_allclose(half.P2[2], KITTI_P2[2])


def test_label_round_trip(tmp_path):
    """Written labels re-project to their own 2D boxes; pixels agree."""
    root = tmp_path / 'd'
    make_demo_dataset(root, 6, 0, seed=11, scale=0.5, workers=1,
                      progress=False, convert=False)
    cam = kitti_camera(0.5)
    n_checked = 0
    for i in range(6):
        name = f'{i:06d}'
        calib = read_calib_file(root / f'training/calib/{name}.txt')
        np.testing.assert_allclose(calib['P2'], cam.P2, rtol=1e-12)
        objs = read_label_file(root / f'training/label_2/{name}.txt')
        frame = render_frame(_rng(11, i), cam)
        assert len(objs) == len(frame.objects)
        for obj, ref in zip(objs, frame.objects, strict=True):
            assert obj['name'] == ref['name']
            if obj['name'] == 'DontCare':
                continue
            box, corners = _project_label_box(obj, calib['P2'], cam.width,
                                              cam.height)
            np.testing.assert_allclose(box, obj['bbox'], atol=0.0051)
            assert obj['location'][1] == CAMERA_HEIGHT  # on the ground
            assert 4.0 <= obj['location'][2] <= 60.0
            assert (corners[:, 2] > 0).all()
            x, _, z = obj['location']
            alpha = obj['rotation_y'] - np.arctan2(x, z)
            alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
            assert abs(obj['alpha'] - alpha) < 0.006 or abs(
                abs(obj['alpha']) - np.pi) < 0.006
            assert 0.0 <= obj['truncated'] <= 1.0
            assert obj['occluded'] in (0, 1, 2)
            n_checked += 1
    assert n_checked >= 10


def test_occlusion_and_pixels_consistent():
    cam = kitti_camera(0.25)
    seen = set()
    for i in range(40):
        f = render_frame(_rng(5, i), cam)
        for obj, frac in zip(f.objects, f.visible_fraction, strict=True):
            if obj['name'] == 'DontCare':
                assert frac < 0.15
                continue
            expect = 0 if frac >= 0.95 else (1 if frac >= 0.6 else 2)
            assert obj['occluded'] == expect
            seen.add(expect)
        assert f.image.shape == (cam.height, cam.width, 3)
        assert f.image.dtype == np.uint8
    assert seen == {0, 1, 2}


def test_colours_independent_of_depth():
    """Object colour (base and rendered) carries no depth information."""
    cam = kitti_camera(0.25)
    depth, base, shown = [], [], []
    for i in range(150):
        f = render_frame(_rng(21, i), cam)
        care = [o for o in f.objects if o['name'] != 'DontCare']
        for o, col in zip(care, f.base_colors, strict=True):
            depth.append(o['location'][2])
            base.append(col)
        # Mean rendered colour of the visible pixels of each object.
        ids = np.unique(f.id_map)
        for k in ids[ids > 0]:
            shown.append(f.image[f.id_map == k].mean(0))
    depth = np.array(depth)
    base = np.array(base)
    assert len(depth) > 500
    for c in range(3):
        r = np.corrcoef(depth, base[:, c])[0, 1]
        assert abs(r) < 0.1, f'channel {c}: corr(depth, colour) = {r:.3f}'
    lum = np.array(base).mean(1)
    assert abs(np.corrcoef(depth, lum)[0, 1]) < 0.1


def _digest(root):
    h = {}
    for p in sorted(root.rglob('*')):
        if p.is_file():
            h[str(p.relative_to(root))] = hashlib.sha256(
                p.read_bytes()).hexdigest()
    return h


def test_deterministic_per_seed(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    make_demo_dataset(a, 3, 1, seed=7, scale=0.25, workers=1,
                      progress=False)
    make_demo_dataset(b, 3, 1, seed=7, scale=0.25, workers=2,
                      progress=False)
    make_demo_dataset(c, 3, 1, seed=8, scale=0.25, workers=1,
                      progress=False, convert=False)
    da, db = _digest(a), _digest(b)
    assert da == db  # byte-identical, whatever the worker count
    assert 'kitti_infos_trainval.pkl' in da
    dc = _digest(c)
    assert da['training/image_2/000000.png'] != dc[
        'training/image_2/000000.png']
    assert (a / 'ImageSets/train.txt').read_text().split() == [
        '000000', '000001', '000002'
    ]
    assert (a / 'ImageSets/val.txt').read_text().split() == ['000003']


def test_heldout_split(tmp_path):
    """The labelled held-out split: its own frames in ``testing/`` from
    its own seed stream, labelled infos, train/val bytes unchanged."""
    from ddml.data_tools import split_image_prefix
    a, b = tmp_path / 'a', tmp_path / 'b'
    make_demo_dataset(a, 3, 1, seed=7, scale=0.25, workers=1,
                      progress=False, num_test=2)
    make_demo_dataset(b, 3, 1, seed=7, scale=0.25, workers=2,
                      progress=False)
    da, db = _digest(a), _digest(b)
    for key, value in db.items():
        if key.startswith('training/'):
            assert da[key] == value  # train/val frames untouched
    assert (a / 'ImageSets/test.txt').read_text().split() == [
        '000000', '000001']
    # its own stream: not a copy of the training frames of the same ids
    for i in ('000000', '000001'):
        assert da[f'testing/image_2/{i}.png'] != \
            da[f'training/image_2/{i}.png']
    with open(a / 'kitti_infos_test.pkl', 'rb') as f:
        test = pickle.load(f)['data_list']
    assert [x['sample_idx'] for x in test] == [0, 1]
    for info in test:  # labelled, from testing/label_2
        objs = [o for o in read_label_file(
            a / 'testing' / 'label_2' / f'{info["sample_idx"]:06d}.txt')
            if o['name'] != 'DontCare']
        cars = [x for x in info['instances'] if x['bbox_label_3d'] >= 0]
        assert len(cars) == len(objs) > 0
        np.testing.assert_allclose(
            [x['bbox'] for x in cars], [o['bbox'] for o in objs], atol=1e-4)
    assert split_image_prefix('test') == 'testing/image_2'
    assert split_image_prefix('val') == 'training/image_2'
    with pytest.raises(ValueError, match='unknown KITTI info split'):
        split_image_prefix('holdout')
    # a testing/ folder that this rendering would not describe is refused
    with pytest.raises(FileExistsError, match='num_test'):
        make_demo_dataset(a, 3, 1, seed=7, scale=0.25, workers=1,
                          progress=False)
    with pytest.raises(ValueError, match='num_test must be >= 0'):
        make_demo_dataset(tmp_path / 'c', 3, 1, num_test=-1)


def test_make_demo_dataset_cli(tmp_path):
    mod = runpy.run_path(str(REPO / 'tools' / 'make_demo_dataset.py'))
    out = tmp_path / 'demo'
    assert mod['main']([
        '--out', str(out), '--num-train', '2', '--num-val', '1', '--seed',
        '1', '--scale', '0.25', '--workers', '1', '--no-progress'
    ]) == 0
    with open(out / 'kitti_infos_val.pkl', 'rb') as f:
        infos = pickle.load(f)
    assert len(infos['data_list']) == 1
    assert infos['data_list'][0]['images']['CAM2']['width'] == 310
    assert not (out / 'kitti_infos_test.pkl').exists()
    out = tmp_path / 'demo_test'
    assert mod['main']([
        '--out', str(out), '--num-train', '1', '--num-val', '1',
        '--num-test', '2', '--scale', '0.25', '--workers', '1',
        '--no-progress'
    ]) == 0
    with open(out / 'kitti_infos_test.pkl', 'rb') as f:
        assert len(pickle.load(f)['data_list']) == 2


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    make_demo_dataset(root, 6, 60, seed=0, scale=0.5, workers=1,
                      progress=False)
    return root


def test_kitti_dataset_loads_demo_infos(demo_root):
    pytest.importorskip('mmdet3d')
    from mmengine.registry import init_default_scope

    from mmdet3d.datasets import KittiDataset
    init_default_scope('mmdet3d')
    ds = KittiDataset(
        data_root=str(demo_root),
        ann_file='kitti_infos_train.pkl',
        pipeline=[
            dict(type='LoadImageFromFileMono3D'),
            dict(
                type='LoadAnnotations3D',
                with_bbox=True,
                with_label=True,
                with_attr_label=False,
                with_bbox_3d=True,
                with_label_3d=True,
                with_bbox_depth=True),
            dict(
                type='Pack3DDetInputs',
                keys=[
                    'img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                    'gt_labels_3d', 'centers_2d', 'depths'
                ])
        ],
        load_type='fov_image_based',
        modality=dict(use_camera=True, use_lidar=False),
        data_prefix=dict(img='training/image_2'),
        box_type_3d='Camera',
        filter_empty_gt=False,
        test_mode=False)
    assert len(ds) == 6
    with open(demo_root / 'kitti_infos_train.pkl', 'rb') as f:
        infos = pickle.load(f)['data_list']
    n_boxes = 0
    for k in range(len(ds)):
        item = ds[k]
        assert tuple(item['inputs']['img'].shape) == (3, 188, 621)
        sample = item['data_samples']
        gt3d, gt2d = sample.gt_instances_3d, sample.gt_instances
        cam = infos[k]['cam_instances']['CAM2']
        boxes = gt3d.bboxes_3d.tensor.numpy()
        assert len(boxes) == len(cam) == len(gt2d.bboxes)
        n_boxes += len(cam)
        # Camera boxes: bottom centre, (l, h, w), ry as in cam_instances.
        np.testing.assert_allclose(
            boxes, np.array([c['bbox_3d'] for c in cam]).reshape(-1, 7),
            atol=1e-5)
        np.testing.assert_allclose(
            gt3d.depths.numpy(), [c['depth'] for c in cam], atol=1e-4)
        np.testing.assert_allclose(
            gt2d.bboxes.numpy(),
            np.array([c['bbox'] for c in cam]).reshape(-1, 4),
            atol=1e-3)
        labels = read_label_file(demo_root /
                                 f'training/label_2/{k:06d}.txt')
        cars = sum(o['name'] == 'Car' for o in labels)
        assert int((gt3d.labels_3d == 2).sum()) == cars
    assert n_boxes > 10


def test_kitti_metric_2d_ap_perfect(demo_root):
    pytest.importorskip('mmdet3d')
    import torch
    from mmdet3d.evaluation import KittiMetric
    ann = str(demo_root / 'kitti_infos_val.pkl')
    with open(ann, 'rb') as f:
        infos = pickle.load(f)['data_list']
    metric = KittiMetric(ann_file=ann, metric='bbox')
    metric.dataset_meta = dict(classes=['Pedestrian', 'Cyclist', 'Car'])
    samples = []
    rng = np.random.default_rng(0)
    for k, info in enumerate(infos):
        inst = [i for i in info['instances'] if 0 <= i['bbox_label'] <= 2]
        samples.append(
            dict(
                sample_idx=k,
                pred_instances_3d=dict(),
                pred_instances=dict(
                    bboxes=torch.tensor([i['bbox'] for i in inst]).reshape(
                        -1, 4),
                    # distinct scores: ties collapse KITTI's PR curve
                    scores=torch.from_numpy(rng.uniform(0.5, 1, len(inst))),
                    labels=torch.tensor([i['bbox_label'] for i in inst],
                                        dtype=torch.long))))
    # KITTI's eval fills one of its 41 PR sample points per ground truth, so
    # a perfect score needs >= 41 moderate ground truths of the class.
    n_mod = sum(i['bbox_label'] == 2 and 0 <= i['difficulty'] <= 1
                for info in infos for i in info['instances'])
    assert n_mod >= 41
    metric.process({}, samples)
    res = metric.compute_metrics(metric.results)
    car = [v for k, v in res.items() if 'Car_2D' in k and 'moderate' in k]
    assert car and all(v == pytest.approx(100.0) for v in car), res


def test_scene_layout_controls_classes_depths_and_columns():
    from ddml.data_tools.synthetic_kitti import DEMO_LAYOUT, SceneLayout
    cam = kitti_camera(1 / 3)
    names, depths, cols = set(), [], []
    for idx in range(40):
        frame = render_frame(np.random.default_rng(idx), cam, DEMO_LAYOUT)
        for obj in frame.objects:
            names.add(obj['name'])
            if obj['name'] == 'DontCare':
                continue
            depths.append(obj['location'][2])
            uvw = cam.P2 @ np.append(obj['location'], 1.0)
            cols.append(uvw[0] / uvw[2] / cam.width)
    assert names <= {'Car', 'DontCare'} and 'Car' in names
    near, far = DEMO_LAYOUT.depth_range
    assert near <= min(depths) and max(depths) <= far
    # bottom centres project inside the image (up to rounding to 1 cm)
    assert -0.01 <= min(cols) and max(cols) <= 1.01
    general = set()
    for idx in range(40):
        frame = render_frame(np.random.default_rng(idx), cam)
        general.update(o['name'] for o in frame.objects)
    assert {'Car', 'Pedestrian', 'Cyclist'} <= general
    for bad in (dict(class_probs=(('Truck', 1.0), )),
                dict(class_probs=(('Car', 0.0), )),
                dict(num_objects=(5, 2)), dict(depth_range=(0.0, 10.0)),
                dict(u_range=(1.0, 0.0)), dict(aligned_fraction=1.5),
                dict(aligned_fraction=-0.1)):
        with pytest.raises(ValueError, match='SceneLayout'):
            SceneLayout(**bad)


def test_scene_layout_skyline_and_headings():
    from ddml.data_tools.synthetic_kitti import SceneLayout
    cam = kitti_camera(1 / 3)
    horizon = int(np.floor(cam.P2[1, 2]))
    empty = dict(class_probs=(('Car', 1.0), ), num_objects=(0, 0))
    for idx in range(5):
        with_sky = render_frame(np.random.default_rng(idx), cam,
                                SceneLayout(**empty)).image
        without = render_frame(np.random.default_rng(idx), cam,
                               SceneLayout(skyline=False, **empty)).image
        sky = without[:horizon].astype(int)
        # no buildings: every sky row is one colour (the vertical gradient)
        assert (sky.max(axis=1) - sky.min(axis=1)).max() == 0
        assert np.ptp(with_sky[:horizon].astype(int), axis=1).max() > 20

    def headings(fraction):
        lay = SceneLayout(class_probs=(('Car', 1.0), ), num_objects=(8, 8),
                          aligned_fraction=fraction)
        return np.array([
            o['rotation_y'] for i in range(30) for o in render_frame(
                np.random.default_rng(i), cam, lay).objects
            if o['name'] == 'Car'
        ])

    off_road = lambda ry: np.abs(np.abs(ry) - np.pi / 2) > 0.75  # noqa: E731
    # aligned: +-pi/2 with a 0.15 rad spread (5 sigma = 0.75 rad)
    assert not off_road(headings(1.0)).any()
    assert off_road(headings(0.0)).mean() > 0.3
