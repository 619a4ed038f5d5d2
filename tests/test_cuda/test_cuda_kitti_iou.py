"""mmdet3d's numba-CUDA rotated IoU against ddml's CPU IoU, and KITTI AP
with either backend.

``rotate_iou_gpu_eval`` computes in float32 with its own polygon clipping;
``ddml.evaluation.rotate_iou_cpu_eval`` is exact up to float64 rounding.
On generic random boxes (no touching edges, no parallel edges) they agree
to float32 rounding. ``kitti_eval`` then gives the same AP figures with
``DDML_KITTI_IOU`` / ``use_cpu_rotated_iou`` set to ``cpu`` or ``cuda``
on scenes where no detection's IoU lies within 1e-4 of a KITTI threshold
(checked first, on the CPU).
"""
import copy
import os
import subprocess
import sys
from typing import Dict, List

import numpy as np
import pytest

from ddml.compat import get_kitti_iou_backend, use_cpu_rotated_iou
from ddml.compat import kitti_rotated_iou
from ddml.evaluation import rotate_iou_cpu_eval

pytestmark = pytest.mark.cuda

CRITERIA = (-1, 0, 1, 2)
THRESHOLDS = (0.25, 0.5, 0.7)
CLASSES = ('Car', 'Pedestrian', 'Cyclist')
# (l, h, w) in metres, as KITTI's averages
DIMS = {
    'Car': (3.9, 1.56, 1.6),
    'Pedestrian': (0.8, 1.75, 0.6),
    'Cyclist': (1.76, 1.74, 0.6)
}


@pytest.fixture(scope='module')
def numba_cuda(cuda_device):
    """numba's CUDA target on a real GPU; skips when numba cannot use it."""
    import numba
    try:
        from numba import cuda
        usable = bool(cuda.is_available()) and not getattr(
            numba.config, 'ENABLE_CUDASIM', 0)
    except Exception as err:  # numba without its CUDA target
        pytest.skip(f'numba {numba.__version__} has no usable CUDA target '
                    f'({err}); install the CUDA toolkit numba needs')
    if not usable:
        pytest.skip(f'numba {numba.__version__} cannot use the GPU '
                    '(numba.cuda.is_available() is False: no driver or no '
                    'NVVM from a CUDA toolkit); mmdet3d\'s kernel cannot run')
    try:  # the module compiles its kernels on import (needs NVVM)
        from mmdet3d.evaluation.functional.kitti_utils.rotate_iou import \
            rotate_iou_gpu_eval
    except Exception as err:
        pytest.skip(f'numba {numba.__version__} sees the GPU but cannot '
                    f"compile mmdet3d's rotated-IoU kernel ({err}); install "
                    'the CUDA toolkit and set CUDA_HOME')
    return rotate_iou_gpu_eval


@pytest.fixture
def restore_backend(monkeypatch):
    """Each test starts with DDML_KITTI_IOU unset; the mode is restored."""
    mode = kitti_rotated_iou._state['mode']
    monkeypatch.delenv('DDML_KITTI_IOU', raising=False)
    yield
    monkeypatch.undo()
    use_cpu_rotated_iou(mode)


def random_bev(rng: np.random.Generator, num: int,
               spread: float) -> np.ndarray:
    """(num, 5) float32 BEV boxes [x, z, l, w, ry]."""
    return np.c_[rng.uniform(-spread, spread, (num, 2)),
                 rng.uniform(0.3, 5.0, (num, 2)),
                 rng.uniform(-np.pi, np.pi, num)].astype(np.float32)


@pytest.mark.parametrize('criterion', CRITERIA)
def test_numba_cuda_iou_equals_cpu_iou(numba_cuda, criterion):
    """150 x 130 clustered boxes (mostly overlapping; the kernel's 64-box
    tiles end mid-tile) and 200 x 100 spread ones: 39,500 pairs."""
    rng = np.random.default_rng(criterion + 10)
    for boxes, queries in ((random_bev(rng, 150, 2.0),
                            random_bev(rng, 130, 2.0)),
                           (random_bev(rng, 200, 15.0),
                            random_bev(rng, 100, 15.0))):
        gpu = numba_cuda(boxes, queries, criterion)
        cpu = rotate_iou_cpu_eval(boxes, queries, criterion)
        assert gpu.shape == cpu.shape == (len(boxes), len(queries))
        assert gpu.dtype == cpu.dtype == np.float32
        assert (cpu > 0).sum() > 300  # enough overlapping pairs to matter
        scale = np.maximum(1.0, np.abs(cpu))  # criterion 2 is an area
        error = np.abs(gpu.astype(np.float64) - cpu) / scale
        # float32 rounding for nearly all pairs; nearly parallel edges
        # (a few dozen pairs) may lose more in the kernel's intersections
        assert np.median(error) < 1e-6, criterion
        assert np.quantile(error, 0.99) < 1e-5, criterion
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=5e-4)


def make_scenes(seed: int, frames: int = 40):
    """KITTI ground-truth and detection annos: 6 objects per frame side by
    side (3 Cars, 2 Pedestrians, 1 Cyclist, all easy), detections with
    location, size and heading noise, random scores and one false
    positive per frame."""
    rng = np.random.default_rng(seed)
    gt_annos, dt_annos = [], []
    names = ['Car'] * 3 + ['Pedestrian'] * 2 + ['Cyclist']
    for _ in range(frames):
        n = len(names)
        x = np.linspace(-12, 12, n) + rng.uniform(-0.5, 0.5, n)
        z = rng.uniform(8, 45, n)
        dims = np.array([DIMS[name] for name in names])
        dims = dims * rng.uniform(0.9, 1.1, (n, 3))
        ry = rng.uniform(-np.pi, np.pi, n)
        left = rng.uniform(0, 1000, n)
        bbox = np.c_[left, np.full(n, 150.), left + 80, np.full(n, 230.)]
        gt = dict(
            name=np.array(names),
            truncated=np.zeros(n),
            occluded=np.zeros(n, dtype=int),
            alpha=ry - np.arctan2(x, z),
            bbox=bbox,
            dimensions=dims,
            location=np.c_[x, np.full(n, 1.6), z],
            rotation_y=ry,
            score=np.zeros(n))
        dt = copy.deepcopy(gt)
        dt['location'] = gt['location'] + np.c_[
            rng.normal(0, 0.3, n), rng.normal(0, 0.05, n),
            rng.normal(0, 0.5, n)]
        dt['dimensions'] = dims * rng.uniform(0.9, 1.1, (n, 3))
        dt['rotation_y'] = ry + rng.normal(0, 0.15, n)
        dt['bbox'] = bbox + rng.normal(0, 2, (n, 4))
        dt['score'] = rng.uniform(0.1, 1.0, n)
        # a false positive Car, 2 m behind the first Pedestrian
        for key in dt:
            dt[key] = np.concatenate([dt[key], dt[key][3:4]])
        dt['name'][-1] = 'Car'
        dt['location'][-1, 2] += 2.0
        dt['dimensions'][-1] = DIMS['Car']
        for key in ('alpha', 'bbox', 'dimensions', 'location',
                    'rotation_y', 'score'):
            dt[key] = dt[key].astype(np.float32)  # as model outputs
        gt_annos.append(gt)
        dt_annos.append(dt)
    return gt_annos, dt_annos


def threshold_gap(gt_annos: List[dict], dt_annos: List[dict]) -> float:
    """Smallest distance of a BEV or 3D overlap of a detection and a
    ground truth of one frame to a KITTI threshold (CPU, exact)."""
    use_cpu_rotated_iou('cpu')
    gaps = []
    for gt, dt in zip(gt_annos, dt_annos, strict=True):
        boxes = np.c_[dt['location'], dt['dimensions'],
                      dt['rotation_y']].astype(np.float64)
        qboxes = np.c_[gt['location'], gt['dimensions'], gt['rotation_y']]
        for overlap in (kitti_rotated_iou.bev_box_overlap(
                boxes[:, [0, 2, 3, 5, 6]], qboxes[:, [0, 2, 3, 5, 6]]),
                        kitti_rotated_iou.d3_box_overlap(boxes, qboxes)):
            values = overlap[overlap > 0.05]
            if values.size:
                gaps.append(np.abs(values[:, None] -
                                   np.array(THRESHOLDS)[None]).min())
    return float(min(gaps))


def run_kitti_eval(gt_annos, dt_annos, mode: str) -> Dict[str, float]:
    """``kitti_eval`` AP figures with the rotated-IoU backend ``mode``."""
    from mmdet3d.evaluation import kitti_eval
    assert use_cpu_rotated_iou(mode) == mode
    if mode != 'auto':
        assert get_kitti_iou_backend() == mode
    _, ap = kitti_eval(copy.deepcopy(gt_annos), copy.deepcopy(dt_annos),
                       list(CLASSES), eval_types=['bbox', 'bev', '3d'])
    return ap


def test_kitti_eval_same_ap_with_either_backend(numba_cuda,
                                                restore_backend):
    gt_annos, dt_annos = make_scenes(seed=0)
    assert threshold_gap(gt_annos, dt_annos) > 1e-4
    cpu = run_kitti_eval(gt_annos, dt_annos, 'cpu')
    cuda = run_kitti_eval(gt_annos, dt_annos, 'cuda')
    assert set(cpu) == set(cuda)
    for key, value in cpu.items():
        assert cuda[key] == pytest.approx(value, abs=1e-9), key
    # the scenes are informative: BEV/3D APs between the extremes
    partial = [v for k, v in cpu.items()
               if ('_3D_' in k or '_BEV_' in k) and 5 < v < 95]
    assert len(partial) >= 6


def test_auto_and_env_select_the_cuda_kernel(numba_cuda, restore_backend):
    """With a usable GPU, 'auto' (the default) keeps mmdet3d's kernel and
    DDML_KITTI_IOU=cpu selects the CPU, also at import time."""
    use_cpu_rotated_iou('auto')
    assert get_kitti_iou_backend() == 'cuda'
    code = ('import ddml; from ddml.compat import get_kitti_iou_backend; '
            'print(get_kitti_iou_backend())')
    for value, expected in (('', 'cuda'), ('cpu', 'cpu'), ('cuda', 'cuda')):
        env = dict(os.environ, DDML_KITTI_IOU=value)
        out = subprocess.run([sys.executable, '-c', code], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == expected, value


def test_kitti_eval_with_auto_backend_on_a_gpu_machine(cuda_device,
                                                       restore_backend):
    """On any CUDA machine the default ('auto') must evaluate: it keeps
    mmdet3d's kernel only when numba can run it, and gives the CPU's AP."""
    gt_annos, dt_annos = make_scenes(seed=0, frames=10)
    assert threshold_gap(gt_annos, dt_annos) > 1e-4
    cpu = run_kitti_eval(gt_annos, dt_annos, 'cpu')
    auto = run_kitti_eval(gt_annos, dt_annos, 'auto')
    assert get_kitti_iou_backend() in ('cpu', 'cuda')
    for key, value in cpu.items():
        assert auto[key] == pytest.approx(value, abs=1e-9), key
