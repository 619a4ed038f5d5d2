"""Benchmark mmdet3d's KITTI evaluation (3D, BEV, 2D, AOS) on the CPU.

Generates synthetic KITTI-val-sized ground truth and predictions (3,769
frames; by default 5 objects and 10 detections of Car / Pedestrian /
Cyclist per frame, detections being perturbed copies of the objects plus
false positives: :func:`ddml.testing.synthetic_kitti_annos`), then times
``mmdet3d.evaluation.kitti_eval`` with the rotated IoU of ddml
(``ddml.compat.kitti_rotated_iou``). numba's compilation is measured
separately by a warm-up evaluation of a few frames.

Example:
    python tools/benchmark_kitti_eval.py
"""
import argparse
import os
import os.path as osp
import sys
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The options, each checked: a mistake stops with one line and exit
    status 2 before anything is imported."""
    positive = cli.int_at_least(1)
    parser = cli.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=positive, default=3769,
                        help='number of frames (KITTI val: 3769)')
    parser.add_argument('--gt-per-frame', type=positive, default=5)
    parser.add_argument('--dets-per-frame', type=cli.int_at_least(0),
                        default=10)
    parser.add_argument('--warmup-frames', type=positive, default=20)
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    parser.add_argument('--backend', default='cpu',
                        choices=('cpu', 'auto', 'cuda'),
                        help='rotated IoU backend (use_cpu_rotated_iou)')
    parser.add_argument('--goal', type=cli.float_above(0), default=120.0,
                        help='goal for the evaluation wall time, seconds')
    return parser.parse_args(argv)


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


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    import numba
    if args.backend == 'cuda':
        from numba import cuda
        if not cuda.is_available():
            raise cli.SetupError('--backend cuda: numba sees no CUDA GPU '
                                 'here; use --backend cpu (or auto)')
    from ddml.compat import get_kitti_iou_backend, use_cpu_rotated_iou
    from ddml.testing import KITTI_EVAL_CLASSES, synthetic_kitti_annos
    from mmdet3d.evaluation import kitti_eval
    from mmdet3d.evaluation.functional.kitti_utils import eval as eval_module
    print(f'imports: {time.perf_counter() - start:.1f} s')
    use_cpu_rotated_iou(args.backend)
    print(f'rotated IoU backend: {get_kitti_iou_backend()}; '
          f'CPU cores: {os.cpu_count()}, numba threads: '
          f'{numba.get_num_threads()}')

    start = time.perf_counter()
    gt_annos, dt_annos = synthetic_kitti_annos(
        args.frames, args.gt_per_frame, args.dets_per_frame, args.seed)
    print(f'synthetic data: {args.frames} frames, '
          f'{sum(len(a["name"]) for a in gt_annos)} objects, '
          f'{sum(len(a["name"]) for a in dt_annos)} detections '
          f'({time.perf_counter() - start:.1f} s)')

    print(f'warm-up (numba compilation) on {args.warmup_frames} frames:')
    start = time.perf_counter()
    with report_progress(eval_module):
        kitti_eval(gt_annos[:args.warmup_frames],
                   dt_annos[:args.warmup_frames], list(KITTI_EVAL_CLASSES),
                   ['bbox', 'bev', '3d'])
    warmup = time.perf_counter() - start

    print(f'evaluation of {args.frames} frames (3D, BEV, 2D, AOS):')
    start = time.perf_counter()
    with report_progress(eval_module) as timings:
        result_str, ap_dict = kitti_eval(gt_annos, dt_annos,
                                         list(KITTI_EVAL_CLASSES),
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
    sys.exit(cli.run(main))
