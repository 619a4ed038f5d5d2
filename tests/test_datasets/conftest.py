"""Fixtures of the dataset tests."""
import pytest


@pytest.fixture
def tiny_kitti_root(tmp_path):
    """A 3-frame synthetic KITTI root (train 2, val 1), no infos."""
    from ddml.datasets.synthetic_kitti import make_demo_dataset
    root = tmp_path / 'tiny'
    make_demo_dataset(root, 2, 1, seed=3, scale=0.25, workers=1,
                      progress=False, convert=False)
    return root
