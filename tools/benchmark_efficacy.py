"""Does the method help? Paired seeds x variants on the synthetic KITTI data.

Variants (``--variants``): baseline; DDML as this add-on trains it (hinge
quasi-isometric loss + depth-map head); DDML exactly as released (official
QI form, weight 0.5, temperature 10, detached target, depth-map head weight
1); QI loss only; depth-map head only; MetricDepth. The default trains 5
seeds of the first three and 3 of the others, each on the demo's data and
schedule shortened to 600 iterations (so that it finishes within 90
minutes on 2 cores), 2 runs at a time with one thread each, and reports
mean ± std, the paired difference of every variant to the baseline (same
seed) with a 95 % confidence interval, and in words which differences lie
outside it.

By default the benchmark detaches and runs in the background, writing
``<work-dir>/efficacy.log``; the same command again resumes where it
stopped (finished runs are cached), ``--report-only`` tabulates what is
there, ``--foreground`` stays attached::

    python tools/benchmark_efficacy.py             # 24 runs, 2 at a time
    tail -f work_dirs/efficacy/efficacy.log
    python tools/benchmark_efficacy.py --report-only

The logic is :mod:`ddml.analysis.efficacy`.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
from run_demo import (BASELINE_CONFIG, DEFAULT_ITERS,  # noqa: E402
                      DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, METHOD_CONFIGS)

CONFIGS = dict(baseline=BASELINE_CONFIG, **METHOD_CONFIGS)
# 24 runs at the demo's 1,200 iterations would take about 2.7 hours on 2
# cores (0.53 s/it baseline, 0.65 s/it with DDML, two runs side by side);
# 600 iterations keep the default within 90 minutes (docs/benchmarks.md,
# "Efficacy"). --iters 1200 is the demo's schedule.
DEFAULT_BENCH_ITERS = 600


def parse_args(argv=None):
    from ddml.analysis.efficacy import DEFAULT_SEEDS, VARIANTS
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT_SEEDS),
                        choices=list(VARIANTS))
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help='the same seeds for every variant (default: '
                        '0-4 for baseline, ddml, ddml-release; 0-2 for the '
                        'others)')
    parser.add_argument('--iters', type=int, default=DEFAULT_BENCH_ITERS,
                        help='training iterations per run (default '
                        f'%(default)s; the demo trains {DEFAULT_ITERS})')
    parser.add_argument('--data-root', default='data/demo_kitti',
                        help='KITTI-format root; the synthetic data is '
                        'rendered there unless --skip-data')
    parser.add_argument('--num-train', type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument('--num-val', type=int, default=DEFAULT_NUM_VAL)
    parser.add_argument('--data-seed', type=int, default=0)
    parser.add_argument('--skip-data', action='store_true',
                        help='use --data-root as it is (e.g. real KITTI)')
    parser.add_argument('--work-dir', default='work_dirs/efficacy')
    parser.add_argument('--parallel', type=int, default=None,
                        help='runs at the same time (default: one per core, '
                        'at most 2)')
    parser.add_argument('--figures', action='store_true',
                        help='descriptor figures for every run')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate the finished runs')
    parser.add_argument('--foreground', action='store_true',
                        help='stay attached instead of detaching')
    return parser.parse_args(argv)


def _detach(argv, log_path: str) -> int:
    """Start this script again in the background, output to ``log_path``."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    cmd = [sys.executable, osp.abspath(__file__), '--foreground'] + argv
    with open(log_path, 'a') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=os.getcwd())
    print(f'efficacy benchmark started in the background (pid {proc.pid}).'
          f'\n  log:    {log_path}\n  follow: tail -f {log_path}\n  resume:'
          ' run the same command again (finished runs are kept)\n  '
          f'report: add --report-only\n  stop:   kill -- -{proc.pid}   '
          '(the whole process group, trainings included)')
    return 0


def _write_report(rows, args, work_dir: str) -> str:
    from ddml.analysis.efficacy import efficacy_report, efficacy_tables
    text = (f'iters={args.iters}, data {osp.abspath(args.data_root)}\n\n'
            f'{efficacy_tables(rows)}\n\n{efficacy_report(rows)}\n')
    path = osp.join(work_dir, 'efficacy.md')
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)
    with open(osp.join(work_dir, 'efficacy.json'), 'w') as f:
        json.dump(dict(args=vars(args), rows=rows), f, indent=1, default=str)
    return text


def main(argv=None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    work_dir = osp.abspath(args.work_dir)
    if not args.foreground and not args.report_only:
        return _detach(raw, osp.join(work_dir, 'efficacy.log'))
    os.chdir(REPO_ROOT)
    from ddml.analysis.efficacy import (DEFAULT_SEEDS, benchmark_jobs,
                                        run_benchmark)
    from ddml.analysis.runs import ensure_dataset
    data_root = osp.abspath(args.data_root)
    os.makedirs(work_dir, exist_ok=True)

    def log(msg):
        print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)

    seeds = {v: (args.seeds if args.seeds is not None else DEFAULT_SEEDS[v])
             for v in args.variants}
    jobs = benchmark_jobs(seeds)
    if args.report_only:
        rows = []
        for variant, seed in jobs:
            path = osp.join(work_dir, variant, f'seed{seed}', 'result.json')
            if osp.isfile(path):
                with open(path) as f:
                    row = json.load(f)
                if row.get('iters') == args.iters:
                    rows.append(row)
        if not rows:
            log(f'no finished runs with --iters {args.iters} in {work_dir}')
            return 1
        print(_write_report(rows, args, work_dir))
        return 0
    cores = os.cpu_count() or 1
    parallel = args.parallel or max(1, min(2, cores))
    threads = max(1, cores // parallel)
    counts = ', '.join(f'{v} x{len(s)}' for v, s in seeds.items())
    log(f'efficacy: {len(jobs)} runs ({counts}), '
        f'{args.iters} iterations each, {parallel} at a time with {threads} '
        f'thread(s); data {data_root}; load {os.getloadavg()[0]:.1f} on '
        f'{cores} CPUs')
    if not args.skip_data:
        ensure_dataset(data_root, args.num_train, args.num_val,
                       args.data_seed, log=log)
    start = time.perf_counter()
    rows = run_benchmark(
        jobs, args.iters, work_dir, data_root, CONFIGS, parallel=parallel,
        threads=threads, figures=args.figures, log=log,
        on_result=lambda rows: _write_report(rows, args, work_dir))
    if not rows:
        log('no run finished')
        return 1
    print(_write_report(rows, args, work_dir))
    log(f'efficacy benchmark finished in '
        f'{(time.perf_counter() - start) / 60:.1f} min: '
        f'{osp.join(work_dir, "efficacy.md")}')
    return 0 if len(rows) == len(jobs) else 1


if __name__ == '__main__':
    sys.exit(main())
