"""The ddml demo: synthetic KITTI-format data, baseline vs. method.

``make demo`` runs this script. It

1. renders the synthetic dataset into ``--data-root`` (once; again only when
   the requested sizes/seed differ from its manifest),
2. trains the demo baseline (SMOKE head, half-width ResNet-18) and the same
   detector with the method (``--method ddml``: quasi-isometric loss +
   object-wise depth-map head; ``metricdepth``: MultiRange loss + depth-map
   head), same seed and schedule, through ``tools/train.py``,
3. evaluates both on the val split with mmdet3d's ``KittiMetric`` and reads
   their object descriptors,
4. prints a table (Car AP3D/APBEV R40 at strict and loose IoU, depth error
   of matched detections, training s/iter, inference ms/image, descriptor
   Spearman correlation and fraction inside the (K, B) bounds) and writes
   figures under ``--work-dir``.

Longer runs: ``python tools/run_demo.py --iters 2000 --num-train 1000``.
"""
import argparse
import warnings
import json
import os
import os.path as osp
import sys
import time

METHOD_CONFIGS = {
    'ddml': 'configs/demo/ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-'
    'mono3d.py',
    'metricdepth': 'configs/demo/ddml-metricdepth_smoke_r18-half_secondfpn_'
    '1xb8-1k_demo-kitti-mono3d.py',
}
BASELINE_CONFIG = \
    'configs/demo/smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'

# Sized so that the whole demo takes about 15 minutes on 2 unloaded cores:
# about 0.45 CPU s per training iteration with one thread (docs/benchmarks.md,
# "Demo"); rendering 1100 frames takes under a minute.
DEFAULT_ITERS = 800
DEFAULT_NUM_TRAIN = 1000
DEFAULT_NUM_VAL = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--iters', type=int, default=DEFAULT_ITERS,
                        help=f'training iterations per model (batch 8), '
                        f'default {DEFAULT_ITERS}')
    parser.add_argument('--num-train', type=int, default=DEFAULT_NUM_TRAIN,
                        help=f'training frames (default {DEFAULT_NUM_TRAIN})')
    parser.add_argument('--num-val', type=int, default=DEFAULT_NUM_VAL,
                        help=f'validation frames (default {DEFAULT_NUM_VAL})')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the data and of both trainings')
    parser.add_argument('--method', choices=sorted(METHOD_CONFIGS),
                        default='ddml', help='the variant to compare')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='runs, figures and tables go here')
    parser.add_argument('--data-root', default='data/demo_kitti',
                        help='synthetic dataset root')
    parser.add_argument('--skip-data', action='store_true',
                        help='use --data-root as it is (no rendering)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch/OpenMP threads per process; 0: the '
                        'library default (one per core). Default: 1 when '
                        'the load average is at least the number of CPUs '
                        '(oversubscribed OpenMP threads made training 4x '
                        'slower on a shared 2-core machine), else 0')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the checkpoints in --work-dir')
    return parser.parse_args(argv)


def _say(msg: str = '') -> None:
    print(msg, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from ddml.analysis.runs import REPO_ROOT
    os.chdir(REPO_ROOT)  # configs and data paths are repository-relative
    t_start = time.perf_counter()
    import numpy as np

    from ddml.analysis.demo_report import (find_scalars, read_scalars,
                                           train_seconds_per_iter)
    from ddml.analysis.model_eval import evaluate_run
    from ddml.analysis.plots import plot_training_curves
    from ddml.analysis.runs import (ensure_dataset, schedule_options,
                                    train_run)

    load_now = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.
    if args.threads is None:
        args.threads = 1 if load_now >= (os.cpu_count() or 1) else 0
    if args.threads > 0:
        import torch
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            os.environ[var] = str(args.threads)  # training subprocesses
        torch.set_num_threads(args.threads)  # evaluation, in this process
    work_dir = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root)
    fig_dir = osp.join(work_dir, 'figures')
    os.makedirs(fig_dir, exist_ok=True)
    runs = [('baseline', BASELINE_CONFIG),
            (args.method, METHOD_CONFIGS[args.method])]
    steps = 4
    _say(f'ddml demo: {args.iters} iterations per model, '
         f'{args.num_train} train / {args.num_val} val frames, seed '
         f'{args.seed}; work dir {work_dir}')
    try:
        load = os.getloadavg()[0]
        threads = os.environ.get('OMP_NUM_THREADS', 'default')
        _say(f'(load average {load:.1f} on {os.cpu_count()} CPUs, '
             f'{threads} threads per process; timings scale with the load)')
    except OSError:
        pass

    # 1. data
    _say(f'\n[1/{steps}] synthetic KITTI-format data')
    t0 = time.perf_counter()
    if args.skip_data:
        if not osp.isfile(osp.join(data_root, 'kitti_infos_val.pkl')):
            _say(f'--skip-data: {data_root} has no kitti_infos_val.pkl')
            return 1
        _say(f'data: using {data_root} as it is')
    else:
        ensure_dataset(data_root, args.num_train, args.num_val, args.seed,
                       log=_say)
    t_data = time.perf_counter() - t0

    # 2. training
    train_info = {}
    for i, (name, config) in enumerate(runs):
        run_dir = osp.join(work_dir, name)
        _say(f'\n[2/{steps}] training {name} ({i + 1}/2): {config}\n'
             f'        full log: {run_dir}/')
        ckpt = osp.join(run_dir, f'iter_{args.iters}.pth')
        if args.skip_train and osp.isfile(ckpt):
            _say(f'reusing {ckpt}')
            train_info[name] = dict(checkpoint=ckpt, wall_s=float('nan'),
                                    cpu_s=float('nan'))
            continue
        opts = schedule_options(args.iters, args.seed, data_root)
        info = train_run(config, run_dir, opts, name=name, log=_say)
        _say(f'{name}: trained in {info["wall_s"]:.0f} s '
             f'(CPU {info["cpu_s"]:.0f} s)')
        train_info[name] = info

    # 3. evaluation
    rows = []
    for i, (name, config) in enumerate(runs):
        _say(f'\n[3/{steps}] evaluating {name} ({i + 1}/2) on '
             f'{args.num_val} val images')
        row = evaluate_run(name, config, train_info[name]['checkpoint'],
                           fig_dir, data_root=data_root)
        scalars_path = find_scalars(osp.join(work_dir, name))
        scalars = read_scalars(scalars_path) if scalars_path else {}
        row['train_s_per_iter'] = train_seconds_per_iter(scalars) \
            if scalars else float('nan')
        row['train_cpu_s_per_iter'] = train_info[name]['cpu_s'] / args.iters
        row['train_wall_s'] = train_info[name]['wall_s']
        row['_scalars'] = scalars
        rows.append(row)

    # 4. report
    _say(f'\n[4/{steps}] report')
    curves = plot_training_curves(
        {r['name']: r.pop('_scalars') for r in rows},
        osp.join(fig_dir, 'training_curves.png'),
        smooth=1)
    table = demo_table(rows)
    total = time.perf_counter() - t_start
    md = demo_table(rows, markdown=True)
    with open(osp.join(work_dir, 'demo_table.md'), 'w') as f:
        f.write(md + '\n')
    with open(osp.join(work_dir, 'demo_results.json'), 'w') as f:
        json.dump(dict(args=vars(args), rows=rows, data_s=t_data,
                       total_s=total), f, indent=1,
                  default=lambda o: o.tolist()
                  if isinstance(o, np.ndarray) else str(o))
    _say(table)
    _say('\nAP: KITTI AP40 of Car in %, strict IoU 0.7 and loose IoU 0.5 '
         '(E/M/H = easy/moderate/hard); depth error: |z_pred - z_gt| of '
         'detections matched to GT by 2D IoU >= 0.5 (all classes); '
         'Spearman / in-bounds: object descriptor distance vs depth '
         'distance over val object pairs (bounds K=1.5, B=0.5 within '
         'eps=10 m).')
    _say('\nfigures:')
    _say(f'  training curves: {curves}')
    for row in rows:
        for path in row['figures']:
            _say(f'  {row["name"]}: {path}')
    _say(f'tables: {osp.join(work_dir, "demo_table.md")}, '
         f'{osp.join(work_dir, "demo_results.json")}')
    _say(f'\ndemo finished in {total / 60:.1f} min (data {t_data:.0f} s)')
    return 0


def demo_table(rows, markdown: bool = False) -> str:
    """Metrics as rows, runs as columns (plus the difference)."""
    from ddml.analysis.demo_report import format_table
    names = [r['name'] for r in rows]
    lines = []

    def ap(prefix, loose):
        suffix = '_loose' if loose else ''
        return [f'{prefix}_{d}{suffix}' for d in ('easy', 'mod', 'hard')]

    spec = [
        ('Car AP3D  E/M/H  IoU 0.7', ap('AP3D', False), 2),
        ('Car AP3D  E/M/H  IoU 0.5', ap('AP3D', True), 2),
        ('Car APBEV E/M/H  IoU 0.7', ap('APBEV', False), 2),
        ('Car APBEV E/M/H  IoU 0.5', ap('APBEV', True), 2),
        ('Car AP2D  moderate', ['AP2D_mod'], 2),
        ('depth MAE matched (m)', ['depth_mae'], 3),
        ('  matched detections', ['depth_matched'], 0),
        ('train s/iter (wall)', ['train_s_per_iter'], 2),
        ('train CPU s/iter', ['train_cpu_s_per_iter'], 2),
        ('inference ms/image (wall)', ['infer_ms'], 1),
        ('inference CPU ms/image', ['infer_cpu_ms'], 1),
        ('descriptor Spearman', ['spearman'], 3),
        ('pairs inside bounds (%)', ['frac_inside'], 1),
    ]
    for title, keys, digits in spec:
        cells = [title]
        vals = []
        for r in rows:
            v = [r.get(k, float('nan')) for k in keys]
            if title.startswith('pairs inside'):
                v = [100 * x if x is not None else None for x in v]
            vals.append(v)
            cells.append(' / '.join(_num(x, digits) for x in v))
        if len(rows) == 2:
            diff = [_diff(b, a, digits) for a, b in zip(vals[0], vals[1])]
            cells.append(' / '.join(diff))
        lines.append(cells)
    header = ['metric'] + names + (['difference'] if len(rows) == 2 else [])
    return format_table(header, lines, markdown=markdown)


def _num(x, digits):
    from ddml.analysis.demo_report import fmt
    return fmt(x, digits)


def _diff(b, a, digits):
    import math
    try:
        d = float(b) - float(a)
    except (TypeError, ValueError):
        return '-'
    if math.isnan(d):
        return '-'
    return f'{d:+.{digits}f}'


if __name__ == '__main__':
    sys.exit(main())
