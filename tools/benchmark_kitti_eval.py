"""Benchmark mmdet3d's KITTI evaluation (3D, BEV, 2D, AOS) on the CPU.

Generates synthetic KITTI-val-sized ground truth and predictions (3,769
frames; by default 5 objects and 10 detections of Car / Pedestrian /
Cyclist per frame, detections being perturbed copies of the objects plus
false positives), then times ``mmdet3d.evaluation.kitti_eval`` with the
rotated IoU of ddml (``ddml.compat.kitti_rotated_iou``). numba's
compilation is measured separately by a warm-up evaluation of a few frames.

Example:
    PYTHONPATH=projects/DDML python tools/benchmark_kitti_eval.py
"""
import argparse
import os
import sys
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import numpy as np

# Typical KITTI sizes (l, h, w) in metres and class frequencies.
CLASSES = ('Car', 'Pedestrian', 'Cyclist')
CLASS_DIMS = np.array([[3.9, 1.53, 1.63], [0.8, 1.76, 0.66],
                       [1.76, 1.74, 0.6]])
CLASS_PROBS = np.array([0.6, 0.25, 0.15])
# KITTI-like camera: focal length and principal point in pixels, image size.
FOCAL, CU, CV = 721.5, 609.6, 172.9
IMG_W, IMG_H = 1242.0, 375.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=3769,
                        help='number of frames (KITTI val: 3769)')
    parser.add_argument('--gt-per-frame', type=int, default=5)
    parser.add_argument('--dets-per-frame', type=int, default=10)
    parser.add_argument('--warmup-frames', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--backend', default='cpu',
                        choices=('cpu', 'auto', 'cuda'),
                        help='rotated IoU backend (use_cpu_rotated_iou)')
    parser.add_argument('--goal', type=float, default=120.0,
                        help='goal for the evaluation wall time, seconds')
    return parser.parse_args()


def project_bboxes(loc: np.ndarray, dims: np.ndarray,
                   rot_y: np.ndarray) -> np.ndarray:
    """Image boxes of camera-frame 3D boxes, clipped to the image.

    Args:
        loc (np.ndarray): (M, 3) bottom centres ``[x, y, z]`` in metres.
        dims (np.ndarray): (M, 3) sizes ``[l, h, w]`` in metres.
        rot_y (np.ndarray): (M,) yaw around the camera y axis, radians.

    Returns:
        np.ndarray: (M, 4) ``[x1, y1, x2, y2]`` in pixels.
    """
    sx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    sy = np.array([0, 0, 0, 0, -1, -1, -1, -1])
    sz = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
    lx, ly, lz = (dims[:, 0:1] * sx, dims[:, 1:2] * sy, dims[:, 2:3] * sz)
    cos, sin = np.cos(rot_y)[:, None], np.sin(rot_y)[:, None]
    x = cos * lx + sin * lz + loc[:, 0:1]
    y = ly + loc[:, 1:2]
    z = -sin * lx + cos * lz + loc[:, 2:3]
    z = np.maximum(z, 0.1)
    u, v = FOCAL * x / z + CU, FOCAL * y / z + CV
    return np.stack([
        np.clip(u.min(1), 0, IMG_W),
        np.clip(v.min(1), 0, IMG_H),
        np.clip(u.max(1), 0, IMG_W),
        np.clip(v.max(1), 0, IMG_H)
    ], 1)


def make_anno(labels: np.ndarray, loc: np.ndarray, dims: np.ndarray,
              rot_y: np.ndarray, score: np.ndarray,
              rng: np.random.Generator, is_gt: bool) -> Dict[str, np.ndarray]:
    """A KITTI anno dict (as ``kitti_eval`` expects) of M objects."""
    m = len(labels)
    return dict(
        name=np.array([CLASSES[i] for i in labels], dtype='<U10'),
        truncated=np.zeros(m) if not is_gt else rng.choice(
            [0.0, 0.0, 0.0, 0.2, 0.4], m),
        occluded=np.zeros(m, dtype=np.int64) if not is_gt else rng.integers(
            0, 3, m),
        alpha=rot_y - np.arctan2(loc[:, 0], loc[:, 2]),
        bbox=project_bboxes(loc, dims, rot_y),
        dimensions=dims,
        location=loc,
        rotation_y=rot_y,
        score=score)


def synthetic_frames(
        num_frames: int, num_gt: int, num_det: int,
        seed: int) -> Tuple[List[Dict[str, np.ndarray]], List[dict]]:
    """Synthetic ground truth and detections of ``num_frames`` frames.

    Every ground-truth object is detected with probability 0.9 by a copy
    whose depth error grows with distance (sigma 3% of z), with smaller
    lateral, size and yaw errors; the remaining detections are false
    positives at random places. Scores are higher for better detections.

    Returns:
        tuple: (gt_annos, dt_annos), lists of KITTI anno dicts.
    """
    rng = np.random.default_rng(seed)
    gt_annos, dt_annos = [], []
    for _ in range(num_frames):
        labels = rng.choice(3, num_gt, p=CLASS_PROBS)
        dims = CLASS_DIMS[labels] * rng.uniform(0.85, 1.15, (num_gt, 3))
        z = rng.uniform(5.0, 60.0, num_gt)
        loc = np.stack([
            rng.uniform(-0.45, 0.45, num_gt) * z,
            rng.normal(1.65, 0.1, num_gt), z
        ], 1)
        rot_y = rng.uniform(-np.pi, np.pi, num_gt)
        gt_annos.append(
            make_anno(labels, loc, dims, rot_y, np.zeros(num_gt), rng, True))

        hit = rng.random(num_gt) < 0.9
        n_hit = int(hit.sum())
        n_fp = max(num_det - n_hit, 0)
        noise = rng.normal(size=(n_hit, 3)) * np.stack(
            [0.01 * z[hit], 0.02 * np.ones(n_hit), 0.03 * z[hit]], 1)
        d_loc = loc[hit] + noise
        d_dims = dims[hit] * rng.normal(1.0, 0.05, (n_hit, 3))
        d_rot = rot_y[hit] + rng.normal(0, 0.1, n_hit)
        err = np.abs(noise[:, 2]) / z[hit]
        d_score = np.clip(1.0 - 5 * err + rng.normal(0, 0.05, n_hit), 0.05,
                          1.0)
        fp_labels = rng.choice(3, n_fp, p=CLASS_PROBS)
        fp_z = rng.uniform(5.0, 60.0, n_fp)
        fp_loc = np.stack([
            rng.uniform(-0.45, 0.45, n_fp) * fp_z,
            rng.normal(1.65, 0.1, n_fp), fp_z
        ], 1)
        dt_annos.append(
            make_anno(
                np.concatenate([labels[hit], fp_labels]),
                np.concatenate([d_loc, fp_loc]),
                np.concatenate([d_dims, CLASS_DIMS[fp_labels]]),
                np.concatenate([d_rot,
                                rng.uniform(-np.pi, np.pi, n_fp)]),
                np.concatenate([d_score,
                                rng.uniform(0.05, 0.6, n_fp)]), rng, False))
    return gt_annos, dt_annos


@contextmanager
def report_progress(eval_module) -> Iterator[Dict[str, float]]:
    """Print one line per KITTI metric while ``kitti_eval`` runs and
    collect the time spent in the rotated-IoU functions."""
    names = {0: '2D bbox (+AOS)', 1: 'BEV', 2: '3D'}
    timings = {'rotated_iou': 0.0}
    originals = {
        name: getattr(eval_module, name)
        for name in ('eval_class', 'bev_box_overlap', 'd3_box_overlap')
    }

    def eval_class(gt_annos, dt_annos, classes, difficulties, metric, *args,
                   **kwargs):
        start = time.perf_counter()
        print(f'  [{metric + 1}/3] {names[metric]} ...', end='', flush=True)
        ret = originals['eval_class'](gt_annos, dt_annos, classes,
                                      difficulties, metric, *args, **kwargs)
        print(f' {time.perf_counter() - start:.1f} s', flush=True)
        return ret

    def timed(name):

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                timings['rotated_iou'] += time.perf_counter() - start

        return wrapper

    eval_module.eval_class = eval_class
    eval_module.bev_box_overlap = timed('bev_box_overlap')
    eval_module.d3_box_overlap = timed('d3_box_overlap')
    try:
        yield timings
    finally:
        for name, fn in originals.items():
            setattr(eval_module, name, fn)


def main() -> int:
    args = parse_args()
    start = time.perf_counter()
    import numba
    from ddml.compat import get_kitti_iou_backend, use_cpu_rotated_iou
    from mmdet3d.evaluation import kitti_eval
    from mmdet3d.evaluation.functional.kitti_utils import eval as eval_module
    print(f'imports: {time.perf_counter() - start:.1f} s')
    use_cpu_rotated_iou(args.backend)
    print(f'rotated IoU backend: {get_kitti_iou_backend()}; '
          f'CPU cores: {os.cpu_count()}, numba threads: '
          f'{numba.get_num_threads()}')

    start = time.perf_counter()
    gt_annos, dt_annos = synthetic_frames(args.frames, args.gt_per_frame,
                                          args.dets_per_frame, args.seed)
    print(f'synthetic data: {args.frames} frames, '
          f'{sum(len(a["name"]) for a in gt_annos)} objects, '
          f'{sum(len(a["name"]) for a in dt_annos)} detections '
          f'({time.perf_counter() - start:.1f} s)')

    print(f'warm-up (numba compilation) on {args.warmup_frames} frames:')
    start = time.perf_counter()
    with report_progress(eval_module):
        kitti_eval(gt_annos[:args.warmup_frames],
                   dt_annos[:args.warmup_frames], list(CLASSES),
                   ['bbox', 'bev', '3d'])
    warmup = time.perf_counter() - start

    print(f'evaluation of {args.frames} frames (3D, BEV, 2D, AOS):')
    start = time.perf_counter()
    with report_progress(eval_module) as timings:
        result_str, ap_dict = kitti_eval(gt_annos, dt_annos, list(CLASSES),
                                         ['bbox', 'bev', '3d'])
    wall = time.perf_counter() - start

    overall = [line for line in result_str.splitlines()
               if line.startswith(('bbox AP40', 'bev  AP40', '3d   AP40',
                                   'aos  AP40'))][-4:]
    print('Overall AP40 (easy, moderate, hard):\n  ' + '\n  '.join(overall))
    print(f'numba warm-up / compilation: {warmup:.1f} s')
    print(f'kitti_eval wall time: {wall:.1f} s (of which rotated IoU '
          f'{timings["rotated_iou"]:.2f} s); goal < {args.goal:.0f} s: '
          f'{"MET" if wall < args.goal else "NOT MET"}')
    return 0 if wall < args.goal else 1


if __name__ == '__main__':
    sys.exit(main())
