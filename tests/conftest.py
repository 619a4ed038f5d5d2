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
