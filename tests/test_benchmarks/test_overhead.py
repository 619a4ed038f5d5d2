"""ddml.benchmarks.overhead: the batch it times and one tiny measurement."""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from ddml.benchmarks import (format_overhead, measure_overhead,  # noqa: E402
                             synthetic_batch)

DEMO_BASELINE = (Path(__file__).resolve().parents[2] / 'configs' / 'demo' /
                 'smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py')


def test_synthetic_batch_is_kitti_like_and_seeded():
    batch = synthetic_batch(2, 96, 320, 5, 4, seed=3)
    imgs, samples = batch['inputs']['img'], batch['data_samples']
    assert len(imgs) == len(samples) == 2
    assert imgs[0].shape == (3, 96, 320) and imgs[0].dtype == torch.uint8
    for sample in samples:
        gt3d, gt = sample.gt_instances_3d, sample.gt_instances
        assert len(gt3d.bboxes_3d) == len(gt.bboxes) == 5
        depths = gt3d.depths.numpy()
        assert ((depths >= 5.) & (depths <= 62.)).all()
        centres = gt3d.centers_2d.numpy()
        # projected centres in the middle 80% of the width
        assert ((centres[:, 0] > 0.09 * 320) & (centres[:, 0] < 0.91 * 320)
                ).all()
        boxes = gt.bboxes.numpy()
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 319).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= 95).all()
        assert set(gt3d.labels_3d.tolist()) <= {0, 1, 2}
        assert np.allclose(sample.metainfo['trans_mat'],
                           np.diag([0.25, 0.25, 1.]))
    again = synthetic_batch(2, 96, 320, 5, 4, seed=3)['data_samples']
    assert torch.equal(again[1].gt_instances_3d.bboxes_3d.tensor,
                       samples[1].gt_instances_3d.bboxes_3d.tensor)


@pytest.mark.slow
def test_measure_overhead_on_the_demo_detector():
    logged = []
    results = measure_overhead(str(DEMO_BASELINE), iters=1, repeats=1,
                               warmup=0, height=96, width=320, objects=4,
                               log=logged.append)
    params = results['params']
    assert params['wrapper'] > params['baseline'] == params['exported']
    assert params['exported_tensors'] == params['baseline_tensors']
    for key in ('train_s', 'infer_s'):
        for model in ('baseline', 'ddml'):
            assert results[key][model]['wall'] > 0
    assert results['aux_s']['wall'] > 0
    assert any('repeat 1/1' in line for line in logged)
    text = format_overhead(results)
    assert 'train step' in text and 'parameters' in text
