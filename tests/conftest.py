"""Shared pytest fixtures.

Real KITTI and Waymo frames live outside the repository in
``../shared/data`` (see its README; licences forbid committing them).
Tests that need them use the fixtures below, which skip with a clear
reason when the folder is absent.
"""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get('DDML_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f'real frames not available: {path} does not exist '
                    '(set DDML_SHARED_DATA to the shared/data folder)')
    return path


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """Root of the real frames (``../shared/data``); skips when absent."""
    return _require(SHARED_DATA)


@pytest.fixture(scope='session')
def kitti_test_root(shared_data) -> Path:
    """mmdet3d's KITTI test data (frames 000000 and 000007)."""
    return _require(shared_data / 'mmdet3d_tests' / 'kitti')


@pytest.fixture(scope='session')
def waymo_test_root(shared_data) -> Path:
    """mmdet3d's Waymo test data (two front-camera frames)."""
    return _require(shared_data / 'mmdet3d_tests' / 'waymo')


def _load_pickle(path: Path):
    from mmengine.fileio import load
    return load(str(path))


@pytest.fixture(scope='session')
def real_kitti_root(shared_data, tmp_path_factory) -> Path:
    """A KITTI root of the real frames 000000, 000007 and 000008.

    ``../shared/data`` ships their images and mmdet3d infos but no KITTI
    label/calib files, so the root is rebuilt from the infos in a temporary
    directory (never in the repository) and converted with ddml's converter
    into ``kitti_infos_{train,val}.pkl`` (both splits hold all three frames:
    3 Cars + 1 Cyclist, 1 Pedestrian, 6 Cars).
    """
    from ddml.data_tools import create_kitti_infos
    from ddml.testing import build_root_from_v1_info, build_root_from_v2_info
    tests = _require(shared_data / 'mmdet3d_tests' / 'kitti')
    demo = _require(shared_data / 'mmdet3d_demo' / 'kitti')
    root = tmp_path_factory.mktemp('real_kitti')
    v2 = _load_pickle(tests / 'kitti_infos_train.pkl')
    build_root_from_v2_info(v2['data_list'][0], v2['metainfo']['categories'],
                            tests / 'training' / 'image_2' / '000000.png',
                            root)
    v1 = _load_pickle(tests / 'kitti_infos_mono3d.pkl')[0]
    build_root_from_v1_info(v1, tests / 'training' / 'image_2' / '000007.png',
                            root)
    d8 = _load_pickle(demo / '000008.pkl')
    info8 = d8['data_list'][0]
    info8.setdefault('sample_idx', info8.pop('sample_id', 8))
    # this older info has no categories; its labels use mmdet3d's ids
    build_root_from_v2_info(info8, v2['metainfo']['categories'],
                            demo / '000008.png', root)
    frames = '000000\n000007\n000008\n'
    for split in ('train', 'val'):
        (root / 'ImageSets' / f'{split}.txt').write_text(frames)
    create_kitti_infos(root, progress=False)
    return root


@pytest.fixture(scope='session')
def synthetic_kitti_root(tmp_path_factory) -> Path:
    """A small synthetic KITTI-format root (4 train, 2 val) with infos."""
    from ddml.data_tools.synthetic_kitti import make_demo_dataset
    root = tmp_path_factory.mktemp('synthetic_kitti')
    make_demo_dataset(root, 4, 2, seed=11, scale=0.5, workers=1,
                      progress=False, convert=True)
    return root


@pytest.fixture
def tiny_kitti_root(tmp_path) -> Path:
    """A 3-frame synthetic KITTI root (train 2, val 1), no infos."""
    from ddml.data_tools.synthetic_kitti import make_demo_dataset
    root = tmp_path / 'tiny'
    make_demo_dataset(root, 2, 1, seed=3, scale=0.25, workers=1,
                      progress=False, convert=False)
    return root


@pytest.fixture(scope='session')
def real_waymo_root(waymo_test_root, tmp_path_factory) -> Path:
    """The real Waymo frames as a ``kitti_format`` root.

    mmdet3d's infos name the images ``*.jpg`` while the shared files are
    ``.png``; the frames are copied under the expected names into a
    temporary directory (never into the repository).
    """
    import shutil
    src = waymo_test_root / 'kitti_format'
    root = tmp_path_factory.mktemp('real_waymo')
    img_dir = root / 'training' / 'image_0'
    img_dir.mkdir(parents=True)
    for split in ('train', 'val'):
        ann = src / f'waymo_infos_{split}.pkl'
        shutil.copy(ann, root / ann.name)
        for info in _load_pickle(ann)['data_list']:
            name = info['images']['CAM_FRONT']['img_path']
            png = src / 'training' / 'image_0' / (
                name.rsplit('.', 1)[0] + '.png')
            shutil.copy(png, img_dir / name)
    return root
