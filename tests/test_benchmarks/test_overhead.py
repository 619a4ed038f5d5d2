"""ddml.benchmarks.overhead and tools/benchmark_overhead.py: the batch it
times, the device it measures on, tiny measurements of the demo pairs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from ddml.benchmarks import (format_overhead, measure_overhead,  # noqa: E402
                             synthetic_batch)
from ddml.data_tools.synthetic_kitti import CLASS_PRIORS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'benchmark_overhead.py'
DEMO = REPO / 'configs' / 'demo'
DEMO_BASELINE = DEMO / 'smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'
MONODLE = DEMO / ('monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-'
                  'mono3d.py')
DDML_SMOKE = DEMO / ('ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-'
                     'mono3d.py')
DDML_MONODLE = DEMO / ('ddml_monodle_r18-half_secondfpn_1xb8-1200iter_demo-'
                       'kitti-mono3d.py')


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


def test_synthetic_batch_of_the_detector_classes():
    batch = synthetic_batch(2, 64, 192, 6, 4, seed=1, classes=('Car', ))
    car = torch.tensor(CLASS_PRIORS['Car']['size'])
    for sample in batch['data_samples']:
        gt3d = sample.gt_instances_3d
        assert gt3d.labels_3d.tolist() == [0] * 6
        assert torch.allclose(gt3d.bboxes_3d.tensor[:, 3:6],
                              car.expand(6, 3))
    with pytest.raises(ValueError, match="no size prior for classes "
                       r"\['Truck'\]"):
        synthetic_batch(1, 64, 192, 2, 4, classes=('Car', 'Truck'))


def test_measure_overhead_without_cuda_stops_before_building():
    if torch.cuda.is_available():
        pytest.skip('a GPU is present; this checks the error without one')
    logged = []
    with pytest.raises(RuntimeError, match='CUDA is not available'):
        measure_overhead(str(DEMO_BASELINE), device='cuda',
                         log=logged.append)
    assert logged == []


def test_measure_overhead_rejects_a_ddml_config_of_another_detector():
    with pytest.raises(RuntimeError, match='does not wrap the detector'):
        measure_overhead(str(MONODLE), ddml_config=str(DDML_SMOKE),
                         height=64, width=192, log=lambda line: None)


def run_tool(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args],
                          env=dict(os.environ, OMP_NUM_THREADS='1'),
                          capture_output=True, text=True, timeout=timeout)


def test_tool_cuda_without_gpu_stops_at_once():
    if torch.cuda.is_available():
        pytest.skip('a GPU is present; this checks the error without one')
    proc = run_tool('--device', 'cuda', timeout=300)
    assert proc.returncode != 0
    assert '--device cuda: CUDA is not available' in proc.stderr
    assert 'config' not in proc.stdout  # nothing was built


def test_tool_measures_the_demo_pairs_on_cpu(tmp_path):
    out = tmp_path / 'overhead.json'
    proc = run_tool('--device', 'cpu', '--models', 'smoke-demo',
                    'monodle-demo', '--height', '64', '--width', '192',
                    '--objects', '3', '--iters', '1', '--repeats', '2',
                    '--warmup', '0', '--json', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['device'] == 'cpu' and report['failed'] == []
    runs = report['runs']
    assert [(r['config'], r['ddml_config']) for r in runs] == [
        (str(DEMO_BASELINE), str(DDML_SMOKE)),
        (str(MONODLE), str(DDML_MONODLE)),
    ]
    assert runs[0]['classes'] == ['Pedestrian', 'Cyclist', 'Car']
    assert runs[1]['classes'] == ['Car']
    for run in runs:
        assert run['device'] == 'cpu' and run['input'] == [1, 3, 64, 192]
        for key in ('train_s', 'infer_s'):
            for model in ('baseline', 'ddml'):
                assert set(run[key][model]) == {'wall', 'cpu'}
                assert run[key][model]['wall'] > 0
                assert len(run[key.replace('_s', '_samples')][model]
                           ['wall']) == 2
        assert set(run['train_ratio']) == {'wall', 'cpu'}
        assert run['train_ratio']['wall'] == pytest.approx(
            run['train_s']['ddml']['wall'] /
            run['train_s']['baseline']['wall'])
        # the auxiliary head's weights and their Adam moments
        assert run['state_mib']['ddml'] > run['state_mib']['baseline'] > 0
        params = run['params']
        assert params['wrapper'] > params['baseline'] == params['exported']
    assert proc.stdout.count('== ') == 2
    assert 'peak memory' not in proc.stdout
