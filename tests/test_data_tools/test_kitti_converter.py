"""Tests of the KITTI -> mmdet3d v2 info converter (tools/create_data.py).

Real frames are compared field by field with mmdet3d 1.4's own infos:
frame 000000 (mmdet3d tests, reduced point cloud), frame 000008 (mmdet3d
demo, full point cloud: ``num_lidar_pts`` compared too) and frame 000007,
whose legacy v1 info is converted by mmdet3d's own ``update_kitti_infos``
(when mmdet3d is importable) to get reference ``cam_instances``.
"""
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from ddml.data_tools.kitti_converter import (count_points_in_boxes,
                                             create_kitti_infos,
                                             kitti_difficulty)
from ddml.data_tools.kitti_io import (KittiFormatError, atomic_dump_pickle,
                                      read_label_file)
from ddml.testing import (build_root_from_v1_info, build_root_from_v2_info,
                          compare_infos)

REPO = Path(__file__).resolve().parents[2]


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def _convert_one(root):
    written = create_kitti_infos(root, root / 'out', progress=False)
    assert sorted(written) == ['train', 'trainval', 'val']
    return _load(written['train'])


def test_frame000000_matches_mmdet3d(kitti_test_root, tmp_path):
    ref = _load(kitti_test_root / 'kitti_infos_train.pkl')
    info = ref['data_list'][0]
    root = build_root_from_v2_info(
        info, ref['metainfo']['categories'],
        kitti_test_root / 'training/image_2/000000.png', tmp_path / 'k')
    mine = _convert_one(root)
    assert mine['metainfo'] == ref['metainfo']
    got = mine['data_list'][0]
    # mmdet3d's info of this frame predates cam_instances; its point count
    # was made from the full cloud, not the 800-point test cloud.
    assert compare_infos(
        got, info, skip=('cam_instances', 'num_lidar_pts')) == []
    cam = got['cam_instances']['CAM2']
    assert len(cam) == 1 and cam[0]['bbox_label'] == 0
    assert cam[0]['center_2d'] == got['instances'][0]['center_2d']


def test_frame000008_matches_mmdet3d_with_point_counts(shared_data, tmp_path):
    demo = shared_data / 'mmdet3d_demo' / 'kitti'
    ref = _load(demo / '000008.pkl')
    info = dict(ref['data_list'][0])
    info['sample_idx'] = info.pop('sample_id')  # older key name
    cats = {'Pedestrian': 0, 'Cyclist': 1, 'Car': 2, 'DontCare': -1}
    root = build_root_from_v2_info(info, cats, demo / '000008.png',
                                   tmp_path / 'k', demo / '000008.bin')
    got = _convert_one(root)['data_list'][0]
    assert compare_infos(got, info, skip=('cam_instances', )) == []
    counts = [i['num_lidar_pts'] for i in got['instances']]
    assert counts == [i['num_lidar_pts'] for i in info['instances']]
    assert counts[-1] == -1  # DontCare
    assert len(got['cam_instances']['CAM2']) == 6  # the 6 cars


@pytest.fixture(scope='module')
def mmdet3d_reference_000007(tmp_path_factory, kitti_test_root):
    """mmdet3d's own v2 conversion of the real v1 info of frame 000007."""
    pytest.importorskip('mmdet3d')
    mim = Path(__import__('mmdet3d').__file__).parent / '.mim'
    sys.path.insert(0, str(mim))
    try:
        from tools.dataset_converters.update_infos_to_v2 import \
            update_kitti_infos
    except ImportError as e:
        pytest.skip(f'mmdet3d converter tools not importable: {e}')
    finally:
        sys.path.remove(str(mim))
    tmp = tmp_path_factory.mktemp('ref7')
    src = tmp / 'kitti_infos_train.pkl'
    src.write_bytes((kitti_test_root / 'kitti_infos_mono3d.pkl').read_bytes())
    update_kitti_infos(str(src), str(tmp / 'out'))
    return _load(tmp / 'out' / 'kitti_infos_train.pkl')


def test_frame000007_cam_instances_match_mmdet3d(kitti_test_root, tmp_path,
                                                 mmdet3d_reference_000007):
    v1 = _load(kitti_test_root / 'kitti_infos_mono3d.pkl')[0]
    root = build_root_from_v1_info(
        v1, kitti_test_root / 'training/image_2/000007.png', tmp_path / 'k')
    mine = _convert_one(root)
    ref = mmdet3d_reference_000007
    assert mine['metainfo'] == ref['metainfo']
    # ddml's cam_instances carry one field more than mmdet3d's: the object's
    # KITTI difficulty (for LoadObjectDifficulty), equal to that of the
    # matching LiDAR instance (same 3D box)
    info = mine['data_list'][0]
    cam = info['cam_instances']['CAM2']
    assert len(cam) == 4
    for c in cam:
        same = [i for i in info['instances']
                if np.allclose(i['bbox_3d'], c['bbox_3d'], atol=1e-4)]
        assert len(same) == 1 and c.pop('difficulty') == same[0][
            'difficulty']
        # and, since INFO_VERSION 3, its label 2D box (LoadAnnotatedBoxes2D)
        assert c.pop('bbox_annotated') == same[0]['bbox']
    assert {i['difficulty'] for i in info['instances']} - {-1} != set()
    # No velodyne in this root: counts are -1 (documented), mmdet3d's came
    # from the full cloud.
    assert compare_infos(
        mine['data_list'][0], ref['data_list'][0],
        skip=('num_lidar_pts', )) == []
    assert all(i['num_lidar_pts'] == -1
               for i in mine['data_list'][0]['instances'])


def test_frame000007_2d_boxes_match_mmdet3d_coco_json(kitti_test_root,
                                                      tmp_path):
    """Without mmdet3d: legacy mono3d COCO json has the same 2D boxes."""
    import json
    v1 = _load(kitti_test_root / 'kitti_infos_mono3d.pkl')[0]
    root = build_root_from_v1_info(
        v1, kitti_test_root / 'training/image_2/000007.png', tmp_path / 'k')
    cam = _convert_one(root)['data_list'][0]['cam_instances']['CAM2']
    anns = json.loads(
        (kitti_test_root / 'kitti_infos_mono3d.coco.json').read_text())
    anns = anns['annotations']
    assert len(cam) == len(anns) == 4
    for c, a in zip(cam, anns, strict=True):
        x, y, w, h = a['bbox']
        np.testing.assert_allclose(c['bbox'], [x, y, x + w, y + h],
                                   atol=1e-6)
        np.testing.assert_allclose(c['center_2d'] + [c['depth']],
                                   a['center2d'], atol=1e-3)
        assert c['bbox_label'] == a['category_id']


def test_point_count_of_a_unit_box():
    # LiDAR frame == camera frame rotated: x_cam = -y_lidar, y_cam = -z,
    # z_cam = x_lidar. A 2x2x2 box at 10 m ahead holds exactly 8 points.
    velo2cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0],
                         [0, 0, 0, 1.]])
    P2 = np.array([[700, 0, 600, 0], [0, 700, 180, 0], [0, 0, 1, 0],
                   [0, 0, 0, 1.]])
    g = np.array([-0.5, 0.5])
    pts = np.array([[10 + a, b, c, 0] for a in g for b in g
                    for c in (0.5, 1.5)] + [[30, 0, 0, 0]])
    # Bottom centre at camera y=0 (lidar z=0); the box spans lidar z 0..2.
    box = np.array([[0.0, 0.0, 10.0, 2.0, 2.0, 2.0, 0.3]])
    n = count_points_in_boxes(pts, box, np.eye(4), velo2cam, P2, 1200, 360)
    assert n.tolist() == [8]


def test_velodyne_absent_gives_minus_one(tiny_kitti_root):
    create_kitti_infos(tiny_kitti_root, progress=False)
    infos = _load(tiny_kitti_root / 'kitti_infos_train.pkl')
    for info in infos['data_list']:
        assert all(i['num_lidar_pts'] == -1 for i in info['instances'])
        assert info['lidar_points']['lidar_path'].endswith('.bin')


def test_test_split_written_when_testing_exists(tiny_kitti_root):
    src = tiny_kitti_root / 'training'
    dst = tiny_kitti_root / 'testing'
    for d in ('image_2', 'calib'):
        (dst / d).mkdir(parents=True)
        for p in (src / d).glob('000000.*'):
            (dst / d / p.name).write_bytes(p.read_bytes())
    (tiny_kitti_root / 'ImageSets' / 'test.txt').write_text('000000\n')
    written = create_kitti_infos(tiny_kitti_root, progress=False)
    assert sorted(written) == ['test', 'train', 'trainval', 'val']
    test = _load(written['test'])['data_list']
    assert test[0]['instances'] == []
    assert test[0]['cam_instances'] == {'CAM2': []}


# ----------------------------------------------------------- bad inputs


def _assert_nothing_written(root, before):
    after = {p: p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()}
    assert after == before, 'files were created or modified on failure'


def _snapshot(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()}


def _expect_error(root, *fragments):
    before = _snapshot(root)
    with pytest.raises(KittiFormatError) as exc:
        create_kitti_infos(root, progress=False)
    msg = str(exc.value)
    for frag in fragments:
        assert frag in msg, f'{frag!r} not in {msg!r}'
    _assert_nothing_written(root, before)
    return msg


@pytest.mark.parametrize('bad_line, field', [
    ('Car 0.00 0 1.0 1 2 3 4 1.5 1.6 3.9 1 1.65 10', None),  # 14 values
    ('Car 0.00 x 1.0 1 2 3 4 1.5 1.6 3.9 1 1.65 10 0.1', 'occluded'),
    ('Car 0.00 0 1.0 1 2 3 4 1.5 1.6 3.9 1 1.65 ten 0.1', 'location.z'),
])
def test_malformed_label_line_names_file_line_field(tiny_kitti_root,
                                                    bad_line, field):
    label = tiny_kitti_root / 'training/label_2/000001.txt'
    lines = label.read_text().splitlines()
    lines.insert(1, bad_line)
    label.write_text('\n'.join(lines) + '\n')
    # Pre-existing info must survive a failed run untouched.
    atomic_dump_pickle({'old': True}, tiny_kitti_root / 'kitti_infos_val.pkl')
    msg = _expect_error(tiny_kitti_root, f'{label}:2:', 'train.txt:2')
    if field:
        assert f"field '{field}'" in msg
    assert _load(tiny_kitti_root / 'kitti_infos_val.pkl') == {'old': True}
    assert not list(tiny_kitti_root.glob('*.tmp'))


def test_missing_calib_names_file(tiny_kitti_root):
    calib = tiny_kitti_root / 'training/calib/000002.txt'
    calib.unlink()
    _expect_error(tiny_kitti_root, str(calib), 'val.txt:1')


def test_calib_missing_key_names_key(tiny_kitti_root):
    calib = tiny_kitti_root / 'training/calib/000000.txt'
    calib.write_text(''.join(
        ln + '\n' for ln in calib.read_text().splitlines()
        if not ln.startswith('Tr_imu_to_velo')))
    _expect_error(tiny_kitti_root, str(calib), 'Tr_imu_to_velo')


def test_image_label_mismatch(tiny_kitti_root):
    (tiny_kitti_root / 'training/image_2/000001.png').unlink()
    _expect_error(tiny_kitti_root, 'image and label lists do not match',
                  '000001.txt')


def test_split_lists_frame_without_image(tiny_kitti_root):
    (tiny_kitti_root / 'ImageSets/val.txt').write_text('000002\n000009\n')
    _expect_error(tiny_kitti_root, 'val.txt:2', '000009')


def test_missing_or_malformed_imagesets(tiny_kitti_root):
    sets = tiny_kitti_root / 'ImageSets'
    (sets / 'train.txt').write_text('000000\nabc\n')
    _expect_error(tiny_kitti_root, f"{sets / 'train.txt'}:2")
    (sets / 'train.txt').unlink()
    _expect_error(tiny_kitti_root, str(sets / 'train.txt'), 'not found')


def test_atomic_dump_leaves_no_partial_file(tmp_path):
    target = tmp_path / 'x.pkl'
    with pytest.raises(Exception):
        atomic_dump_pickle({'f': lambda: 0}, target)  # unpicklable
    assert list(tmp_path.iterdir()) == []


def test_label_reader_round_trip(tmp_path):
    p = tmp_path / 'l.txt'
    p.write_text('Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 '
                 '1.89 0.48 1.20 1.84 1.47 8.41 0.01\n\n'
                 'DontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10'
                 '\n')
    objs = read_label_file(p)
    assert [o['name'] for o in objs] == ['Pedestrian', 'DontCare']
    assert objs[0]['dimensions'] == [1.89, 0.48, 1.2]
    assert objs[0]['location'] == [1.84, 1.47, 8.41]


def test_create_data_cli(tiny_kitti_root, tmp_path, capsys):
    mod = runpy.run_path(str(REPO / 'tools' / 'create_data.py'))
    out = tmp_path / 'infos'
    rc = mod['main'](['kitti', '--root-path', str(tiny_kitti_root),
                      '--out-dir', str(out), '--extra-tag', 'demo',
                      '--no-progress'])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        'demo_infos_train.pkl', 'demo_infos_trainval.pkl',
        'demo_infos_val.pkl'
    ]
    (tiny_kitti_root / 'ImageSets/val.txt').unlink()
    assert mod['main'](['kitti', '--root-path', str(tiny_kitti_root),
                        '--no-progress']) == 1
    assert 'val.txt' in capsys.readouterr().err


# ----------------------------------------------------------------------
# the releases' per-object facts in cam_instances (INFO_VERSION 3)
# ----------------------------------------------------------------------
#: MonoDLE's level names -> ddml's codes
_LEVEL_CODES = dict(Easy=0, Moderate=1, Hard=2, UnKnown=-1)


def _release_object3d():
    """``Object3d`` of MonoDLE's release (``../shared/reference``; skips
    with the reason when it is absent)."""
    from ddml.testing.reference import load_definitions, require_release
    require_release('monodle')
    return load_definitions('monodle', 'lib/datasets/kitti/kitti_utils.py',
                            ['Object3d']).Object3d


def _boundary_objects(rng, num):
    """Label objects around KITTI's height, occlusion and truncation
    limits (2-decimal label boxes, as KITTI's files)."""
    objs = []
    for _ in range(num):
        top = round(float(rng.uniform(120, 200)), 2)
        height = round(float(rng.choice([rng.uniform(23.5, 26.),
                                         rng.uniform(38.5, 41.),
                                         rng.uniform(10, 80)])), 2)
        objs.append(dict(
            name='Car',
            truncated=float(rng.choice([0., 0.15, 0.16, 0.3, 0.31, 0.5,
                                        0.51, 0.9])),
            occluded=int(rng.integers(0, 4)), alpha=0.1,
            bbox=[300.0, top, 380.0, round(top + height, 2)],
            dimensions=[1.5, 1.6, 3.9], location=[1.0, 1.6, 15.0],
            rotation_y=0.2))
    return objs


def _parse_line(tmp_path, line):
    """One label line as ddml's reader parses it."""
    path = tmp_path / 'one.txt'
    path.write_text(line + '\n')
    return read_label_file(path)[0]


def test_monodle_difficulty_equals_the_release_get_obj_level(tmp_path):
    """``kitti_difficulty(rule='monodle')``, and so every ``cam_instances``
    difficulty the converter writes, equals ``Object3d.get_obj_level`` of
    MonoDLE's release (its ``+1`` px height, its float32 box) on the same
    label lines, 400 of them around the limits."""
    from ddml.data_tools.kitti_io import format_label_line
    release = _release_object3d()
    objs = _boundary_objects(np.random.default_rng(0), 400)
    lines = [format_label_line(o) for o in objs]
    want = [_LEVEL_CODES[release(line).level_str] for line in lines]
    parsed = [_parse_line(tmp_path, line) for line in lines]
    got = kitti_difficulty(np.array([o['bbox'] for o in parsed]),
                           np.array([o['occluded'] for o in parsed]),
                           np.array([o['truncated'] for o in parsed]),
                           rule='monodle')
    assert got.tolist() == want
    # the test means something: every level occurs, and mmdet3d's rule
    # differs on some of these objects
    assert set(want) == {-1, 0, 1, 2}
    mmdet3d = kitti_difficulty(np.array([o['bbox'] for o in parsed]),
                               np.array([o['occluded'] for o in parsed]),
                               np.array([o['truncated'] for o in parsed]))
    assert (mmdet3d != got).sum() > 10
    with pytest.raises(ValueError, match='rule'):
        kitti_difficulty(np.zeros((1, 4)), np.zeros(1), np.zeros(1), 'kitti')


def test_cam_instances_carry_label_box_and_release_difficulty(
        real_kitti_root):
    """On real frames: each ``cam_instances`` entry keeps its label 2D box
    beside the projected one, and MonoDLE's difficulty, which differs from
    the LiDAR instance's mmdet3d difficulty exactly where the two rules
    differ (frame 000008 has a Car 39.6 px tall: easy for the release,
    moderate for mmdet3d)."""
    infos = _load(real_kitti_root / 'kitti_infos_train.pkl')['data_list']
    checked, differ = 0, 0
    for info in infos:
        for c in info['cam_instances']['CAM2']:
            same = [i for i in info['instances']
                    if np.allclose(i['bbox_3d'], c['bbox_3d'], atol=1e-4)]
            assert len(same) == 1
            inst = same[0]
            assert c['bbox_annotated'] == inst['bbox']
            assert c['bbox'] != inst['bbox']  # the projected box
            want = kitti_difficulty(np.array([inst['bbox']]),
                                    np.array([inst['occluded']]),
                                    np.array([inst['truncated']]),
                                    rule='monodle')[0]
            assert c['difficulty'] == want
            height = inst['bbox'][3] - inst['bbox'][1]
            if c['difficulty'] != inst['difficulty']:
                differ += 1
                assert 39 <= height <= 40 or 24 <= height <= 25
            checked += 1
    assert checked == 11 and differ == 1
