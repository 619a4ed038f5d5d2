"""ddml.testing.synthetic_kitti_annos: what the KITTI evaluation benchmark
evaluates."""
import numpy as np
import pytest

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from ddml.data_tools import KITTI_IMAGE_SIZE  # noqa: E402
from ddml.testing import (KITTI_EVAL_CLASSES,  # noqa: E402
                          synthetic_kitti_annos)


def test_annos_are_kitti_eval_inputs():
    gt_annos, dt_annos = synthetic_kitti_annos(50, 5, 10, seed=0)
    assert len(gt_annos) == len(dt_annos) == 50
    width, height = KITTI_IMAGE_SIZE
    hits = 0
    for gt, dt in zip(gt_annos, dt_annos, strict=True):
        assert len(gt['name']) == 5 and len(dt['name']) == 10
        assert set(gt['name']) <= set(KITTI_EVAL_CLASSES)
        for anno in (gt, dt):
            m = len(anno['name'])
            assert anno['bbox'].shape == (m, 4)
            assert anno['dimensions'].shape == anno['location'].shape == \
                (m, 3)
            box = anno['bbox']
            assert (box[:, 0] <= box[:, 2]).all()
            assert (box[:, 1] <= box[:, 3]).all()
            assert (box[:, 0::2] >= 0).all()
            assert (box[:, 0::2] <= width - 1).all()
            assert (box[:, 1::2] <= height - 1).all()
        assert (gt['score'] == 0).all() and (dt['score'] > 0).all()
        hits += int((dt['score'] > 0.6).sum())
    # about 90% of the 250 objects are detected, mostly with high scores
    assert 150 < hits <= 250
    again, _ = synthetic_kitti_annos(50, 5, 10, seed=0)
    assert np.array_equal(again[7]['bbox'], gt_annos[7]['bbox'])
