"""Does the method help? seeds x variants on the synthetic KITTI data.

Example (the run recorded in docs/benchmarks.md)::

    nohup python tools/benchmark_efficacy.py --seeds 0 1 2 --iters 80 \
        > work_dirs/efficacy.log 2>&1 &

Variants: baseline, + quasi-isometric loss, + depth-map head, + both
(DDML), + MetricDepth's multi-range loss (``--variants`` picks some). Each
(variant, seed) trains the demo detector with the same schedule and data,
then is evaluated on the val split: Car AP3D/APBEV/AP2D (KITTI R40, strict
and loose IoU), depth error of matched detections, descriptor Spearman
correlation and fraction inside the (K, B) bounds, train s/iter and
inference ms/image. Prints and writes ``<work-dir>/efficacy.md`` (mean ±
standard deviation over seeds) and ``efficacy.json``. Finished runs are
cached: re-running the command resumes.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time


def parse_args(argv=None):
    from ddml.analysis.efficacy import DEFAULT_VARIANTS, VARIANTS
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=300,
                        help='training iterations per run (batch 8)')
    parser.add_argument('--variants', nargs='+', default=DEFAULT_VARIANTS,
                        choices=list(VARIANTS),
                        help='default: %(default)s; qi_w10 / qi_dmap_w10 '
                        'weight the quasi-isometric loss x10')
    parser.add_argument('--data-root', default='data/demo_kitti',
                        help='KITTI-format root with kitti_infos_{train,val}'
                        '.pkl; the synthetic data is rendered there unless '
                        '--skip-data')
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--data-seed', type=int, default=0)
    parser.add_argument('--skip-data', action='store_true',
                        help='use --data-root as it is (e.g. real KITTI)')
    parser.add_argument('--work-dir', default='work_dirs/efficacy')
    parser.add_argument('--no-figures', action='store_true')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate the finished runs of '
                        'these seeds/variants found in --work-dir')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from ddml.analysis.efficacy import aggregate, efficacy_tables, run_one
    from ddml.analysis.runs import REPO_ROOT, ensure_dataset
    data_root = osp.abspath(args.data_root)
    work_dir = osp.abspath(args.work_dir)
    os.chdir(REPO_ROOT)
    os.makedirs(work_dir, exist_ok=True)

    def log(msg):
        print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)

    log(f'efficacy: seeds {args.seeds}, variants {args.variants}, '
        f'{args.iters} iterations, data {data_root}, load '
        f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
    if not args.skip_data and not args.report_only:
        ensure_dataset(data_root, args.num_train, args.num_val,
                       args.data_seed, log=log)
    rows = []
    start = time.perf_counter()
    total = len(args.seeds) * len(args.variants)
    done = 0
    # seed-major: every finished seed has all variants
    for seed in args.seeds:
        for variant in args.variants:
            t0 = time.perf_counter()
            if args.report_only:
                path = osp.join(work_dir, variant, f'seed{seed}',
                                'result.json')
                if osp.isfile(path):
                    with open(path) as f:
                        row = json.load(f)
                    if row.get('iters') == args.iters:
                        rows.append(row)
                continue
            row = run_one(variant, seed, args.iters, work_dir, data_root,
                          log=log, figures=not args.no_figures)
            rows.append(row)
            done += 1
            elapsed = time.perf_counter() - start
            log(f'done {variant} seed {seed} ({done}/{total}) in '
                f'{time.perf_counter() - t0:.0f} s: Spearman '
                f'{row.get("spearman", float("nan")):.3f}, AP3D mod 0.5 '
                f'{row.get("AP3D_mod_loose", float("nan")):.2f}, depth MAE '
                f'{row.get("depth_mae", float("nan")):.3f} m; ETA '
                f'{elapsed / done * (total - done) / 60:.0f} min')
            agg = aggregate(rows)
            tables = efficacy_tables(agg)
            with open(osp.join(work_dir, 'efficacy.md'), 'w') as f:
                f.write(f'iters={args.iters}, seeds={args.seeds}, data '
                        f'{data_root}\n\n{tables}\n')
            with open(osp.join(work_dir, 'efficacy.json'), 'w') as f:
                json.dump(dict(args=vars(args), rows=rows, aggregate=agg),
                          f, indent=1, default=str)
    if args.report_only:
        if not rows:
            log('no finished runs found')
            return 1
        agg = aggregate(rows)
        with open(osp.join(work_dir, 'efficacy.md'), 'w') as f:
            f.write(f'iters={args.iters}, seeds={args.seeds}, data '
                    f'{data_root}\n\n{efficacy_tables(agg)}\n')
        with open(osp.join(work_dir, 'efficacy.json'), 'w') as f:
            json.dump(dict(args=vars(args), rows=rows, aggregate=agg), f,
                      indent=1, default=str)
    print(efficacy_tables(aggregate(rows), markdown=True))
    log(f'efficacy benchmark finished in '
        f'{(time.perf_counter() - start) / 60:.1f} min; '
        f'{osp.join(work_dir, "efficacy.md")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
