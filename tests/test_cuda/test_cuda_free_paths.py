"""The Waymo metric and the KITTI converter never touch CUDA.

Each workload runs in a fresh interpreter (so nothing earlier in the
test session has created a CUDA context) and reports whether torch or
numba initialised CUDA; it runs once as it is and once with
``CUDA_VISIBLE_DEVICES=""`` and must give the same figures. On a CPU
machine this checks the non-CUDA half (the workloads run); on a CUDA
machine it shows that they leave the GPU alone. A last test feeds the
Waymo metric predictions that live on the GPU, as a model's do.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[2]

REPORT = r'''
import json, sys
import torch


def numba_cuda_initialized():
    # numba marks its driver initialised also when it found no libcuda
    # (with an initialization_error); only a successful cuInit counts
    driver = getattr(sys.modules.get('numba.cuda.cudadrv.driver'),
                     'driver', None)
    return bool(getattr(driver, 'is_initialized', False)
                and getattr(driver, 'initialization_error', None) is None)


def report(figures):
    print('REPORT ' + json.dumps(dict(
        figures=figures,
        torch_cuda_initialized=torch.cuda.is_initialized(),
        numba_cuda_initialized=numba_cuda_initialized())))
'''

CONVERTER = REPORT + r'''
from mmengine.fileio import load
from ddml.data_tools import create_kitti_infos, make_demo_dataset

root = sys.argv[1]
make_demo_dataset(root, 3, 2, seed=2, scale=0.25, workers=1,
                  progress=False, convert=False)
create_kitti_infos(root, progress=False)
figures = {}
for split in ('train', 'val'):
    infos = load(f'{root}/kitti_infos_{split}.pkl')['data_list']
    figures[split] = [len(info['cam_instances']['CAM2']) for info in infos]
report(figures)
'''

WAYMO = REPORT + r'''
from mmengine.fileio import load
from mmdet3d.structures import CameraInstance3DBoxes
from ddml.evaluation import WaymoMono3DMetric

ann = sys.argv[1]
metric = WaymoMono3DMetric(ann_file=ann)
metric.dataset_meta = dict(classes=['Car', 'Pedestrian', 'Cyclist'])
samples = []
for info in load(ann)['data_list']:
    instances = info['cam_instances']['CAM_FRONT']
    boxes = torch.tensor([i['bbox_3d'] for i in instances],
                         dtype=torch.float32).reshape(-1, 7)
    # 0.3 m too far: AP and LET figures strictly between 0 and 1 for some
    boxes[:, 2] += 0.3
    samples.append(dict(
        pred_instances_3d=dict(
            bboxes_3d=CameraInstance3DBoxes(boxes),
            scores_3d=torch.linspace(0.9, 0.5, len(instances)),
            labels_3d=torch.tensor([i['bbox_label_3d'] for i in instances])),
        context_name=info['context_name'], timestamp=info['timestamp']))
metric.process({}, samples)
report(metric.compute_metrics(metric.results))
'''


def run_isolated(code: str, arg: str, hide_gpus: bool) -> dict:
    """Run ``code`` in a fresh interpreter; return its report."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if hide_gpus:
        env['CUDA_VISIBLE_DEVICES'] = ''
    proc = subprocess.run([sys.executable, '-c', code, arg],
                          cwd=str(REPO),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith('REPORT ')]
    assert lines, proc.stdout[-3000:]
    return json.loads(lines[-1][len('REPORT '):])


def check_untouched(reports) -> None:
    for hide_gpus, report in reports.items():
        assert report['torch_cuda_initialized'] is False, hide_gpus
        assert report['numba_cuda_initialized'] is False, hide_gpus
    assert reports[False]['figures'] == reports[True]['figures']


def test_kitti_converter_does_not_touch_cuda(tmp_path):
    reports = {
        hide: run_isolated(CONVERTER, str(tmp_path / f'kitti_{hide}'), hide)
        for hide in (False, True)
    }
    check_untouched(reports)
    assert len(reports[False]['figures']['train']) == 3
    assert sum(reports[False]['figures']['train']) > 0


def test_waymo_metric_does_not_touch_cuda(waymo_test_root):
    ann = waymo_test_root / 'kitti_format' / 'waymo_infos_val.pkl'
    reports = {hide: run_isolated(WAYMO, str(ann), hide)
               for hide in (False, True)}
    check_untouched(reports)
    figures = reports[False]['figures']
    assert 'Vehicle/LEVEL_1/AP' in figures
    assert all(0.0 <= v <= 1.0 for v in figures.values())


def test_waymo_metric_takes_gpu_predictions(cuda_device, waymo_test_root):
    """Predictions on the GPU (as a model returns them) give the same
    figures as the same predictions on the CPU."""
    import torch
    from mmengine.fileio import load

    from ddml.evaluation import WaymoMono3DMetric
    from mmdet3d.structures import CameraInstance3DBoxes
    ann = str(waymo_test_root / 'kitti_format' / 'waymo_infos_val.pkl')
    figures = {}
    for device in (torch.device('cpu'), cuda_device):
        metric = WaymoMono3DMetric(ann_file=ann)
        metric.dataset_meta = dict(classes=['Car', 'Pedestrian', 'Cyclist'])
        samples = []
        for info in load(ann)['data_list']:
            instances = info['cam_instances']['CAM_FRONT']
            boxes = torch.tensor([i['bbox_3d'] for i in instances],
                                 dtype=torch.float32).reshape(-1, 7)
            boxes[:, 0] += 0.2
            samples.append(
                dict(
                    pred_instances_3d=dict(
                        bboxes_3d=CameraInstance3DBoxes(boxes.to(device)),
                        scores_3d=torch.full((len(instances), ), 0.7,
                                             device=device),
                        labels_3d=torch.tensor(
                            [i['bbox_label_3d'] for i in instances],
                            device=device)),
                    context_name=info['context_name'],
                    timestamp=info['timestamp']))
        metric.process({}, samples)
        figures[device.type] = metric.compute_metrics(metric.results)
    assert figures['cuda'] == figures['cpu']
    assert figures['cpu']['Vehicle/LEVEL_1/AP'] == pytest.approx(1.0)
