"""Does the method help? Paired seeds x variants on the synthetic KITTI data.

Variants (``--variants``): baseline; DDML as this add-on trains it (hinge
quasi-isometric loss + depth-map head); DDML exactly as released (official
QI form, weight 0.5, temperature 10, detached target, depth-map head weight
1, and the release's sample rules: no auxiliary loss on affine-augmented
images, KITTI's 'UnKnown' objects left out); QI loss only; depth-map head
only; MetricDepth. The default trains 5 seeds of the first three and 3 of
the others, each on the demo's data and schedule shortened to 600
iterations, 2 runs at a time with one thread each, evaluates on
``--eval-split`` (``val``, where design choices are made, or the held-out
``test``, where claims are made) and reports mean ± std, the paired
difference of every variant to the baseline (same seed) with a 95 %
confidence interval (unadjusted: exploratory).

``--dataset waymo`` runs it on the synthetic Waymo-format data of
``tools/run_demo.py --dataset waymo`` with the Waymo demo configs
(variants baseline, ddml, qi, dmap), evaluated with WaymoMono3DMetric:
Vehicle LET-3D-AP / APL / APH (LEVEL_2), AP / APH (LEVEL_1, LEVEL_2) and
LET-3D-AP and AP (LEVEL_2) by range take the place of KITTI's AP40
columns; data in ``data/demo_waymo``, results in
``work_dirs/efficacy-waymo``.

``--protocol docs/efficacy/protocol.json`` runs a pre-registered protocol
instead (its data, split, schedule, arms and seeds; nothing else may be
given; a protocol's ``"dataset": "waymo"`` picks the Waymo data and
columns): each run's row goes as JSON into the protocol's records folder,
which is also what a later session resumes from, and ``--report-only``
writes the protocol's analysis (primary endpoints with Holm's correction;
the report and a picture of it beside it, ``<report>.png``: every run with
its seed joined across arms, and the paired differences with their
intervals) once its primary arms are complete, and refuses before.

By default the benchmark detaches and runs in the background, writing
``<work-dir>/efficacy.log``; the same command again resumes where it
stopped (finished runs are cached), ``--report-only`` tabulates what is
there, ``--foreground`` stays attached::

    python tools/benchmark_efficacy.py             # 24 runs, 2 at a time
    tail -f work_dirs/efficacy/efficacy.log
    python tools/benchmark_efficacy.py --report-only
    python tools/benchmark_efficacy.py --protocol docs/efficacy/protocol.json
    python tools/benchmark_efficacy.py --protocol docs/efficacy/protocol.json \
        --report-only

The logic is :mod:`ddml.analysis.efficacy` and :mod:`ddml.analysis.protocol`.
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
from _cli import cli  # noqa: E402  (the checks, without importing ddml)
from run_demo import (BASELINE_CONFIG, DATASET_CONFIGS,  # noqa: E402
                      DEFAULT_ITERS, DEFAULT_NUM_TEST, DEFAULT_NUM_TRAIN,
                      DEFAULT_NUM_VAL, METHOD_CONFIGS)

CONFIGS = dict(baseline=BASELINE_CONFIG, **METHOD_CONFIGS)
# 24 runs at the demo's 1,200 iterations would take about 2.7 hours on 2
# cores (0.53 s/it baseline, 0.65 s/it with DDML, two runs side by side);
# 600 iterations keep the default within 90 minutes (docs/benchmarks.md,
# "Efficacy"). --iters 1200 is the demo's schedule.
DEFAULT_BENCH_ITERS = 600
# what a protocol fixes (given with --protocol: refused)
_PROTOCOL_FIXED = ('dataset', 'seeds', 'iters', 'num_train', 'num_val',
                   'num_test', 'data_seed', 'eval_split', 'data_root',
                   'skip_data')


def dataset_variants(dataset: str, default_only: bool = False) -> list:
    """The variants whose config role the dataset has (of the default
    benchmark's, ``DEFAULT_SEEDS``, with ``default_only``)."""
    from ddml.analysis.efficacy import DEFAULT_SEEDS, VARIANTS
    return [v for v in (DEFAULT_SEEDS if default_only else VARIANTS)
            if VARIANTS[v][1] in DATASET_CONFIGS[dataset]]


def check_variants(variants, dataset: str, where: str) -> None:
    """Raise ValueError (naming ``where`` and the choices) when a variant
    has no config for the dataset."""
    ok = dataset_variants(dataset)
    bad = [v for v in variants if v not in ok]
    if bad:
        raise ValueError(f'{where}: {" ".join(bad)} has no {dataset} '
                         f'config; for {dataset} choose from {ok}')


def parse_args(argv=None):
    """The options, each value checked (one line and exit status 2 on a
    mistake); the files and folders are checked by :func:`check_args`."""
    from ddml.analysis.efficacy import DEFAULT_SEEDS, VARIANTS
    positive, count = cli.int_at_least(1), cli.int_at_least(0)
    parser = cli.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--protocol', default=None,
                        help='run (or with --report-only, analyse) a '
                        'pre-registered protocol JSON file')
    parser.add_argument('--dataset', choices=sorted(DATASET_CONFIGS),
                        default=None,
                        help='synthetic data format: kitti (default) or '
                        'waymo (Waymo front camera, WaymoMono3DMetric '
                        'columns); a protocol names its own')
    parser.add_argument('--variants', nargs='+', default=None,
                        choices=list(VARIANTS),
                        help='variants to run (default: '
                        f'{" ".join(DEFAULT_SEEDS)}; with --protocol: its '
                        'arms, or these of them)')
    parser.add_argument('--seeds', type=count, nargs='+', default=None,
                        help='the same seeds for every variant (default: '
                        '0-4 for baseline, ddml, ddml-release; 0-2 for the '
                        'others)')
    parser.add_argument('--iters', type=positive, default=None,
                        help='training iterations per run (default '
                        f'{DEFAULT_BENCH_ITERS}; the demo trains '
                        f'{DEFAULT_ITERS})')
    parser.add_argument('--eval-split', choices=['val', 'test'], default=None,
                        help='split evaluated on: val (default; design '
                        'choices) or test (held-out; claims)')
    parser.add_argument('--data-root', default=None,
                        help='dataset root (default data/demo_kitti, '
                        'data/demo_waymo for waymo); the synthetic data is '
                        'rendered there unless --skip-data')
    parser.add_argument('--num-train', type=positive, default=None,
                        help=f'default {DEFAULT_NUM_TRAIN}')
    parser.add_argument('--num-val', type=positive, default=None,
                        help=f'default {DEFAULT_NUM_VAL}')
    parser.add_argument('--num-test', type=count, default=None,
                        help=f'held-out frames, default {DEFAULT_NUM_TEST}')
    parser.add_argument('--data-seed', type=count, default=None,
                        help='rendering seed, default 0')
    parser.add_argument('--skip-data', action='store_true',
                        help='use --data-root as it is (e.g. real KITTI)')
    parser.add_argument('--work-dir', default=None,
                        help='default work_dirs/efficacy, '
                        'work_dirs/efficacy-waymo for waymo')
    parser.add_argument('--parallel', type=positive, default=None,
                        help='runs at the same time (default: one per core, '
                        'at most 2)')
    parser.add_argument('--figures', action='store_true',
                        help='descriptor figures for every run')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate the finished runs')
    parser.add_argument('--foreground', action='store_true',
                        help='stay attached instead of detaching')
    args = parser.parse_args(argv)
    for option in ('variants', 'seeds'):
        values = getattr(args, option) or []
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            parser.error(f'--{option}: {" ".join(twice)} given twice; give '
                         'each once')
    if args.protocol is not None:
        given = [f'--{k.replace("_", "-")}' for k in _PROTOCOL_FIXED
                 if getattr(args, k) not in (None, False)]
        if given:
            parser.error(f'{" ".join(given)}: the protocol '
                         f'{args.protocol} fixes these; leave them out')
    else:
        if args.eval_split == 'test' and args.num_test == 0 and \
                not args.skip_data:
            parser.error('--eval-split test needs a held-out split: give '
                         '--num-test > 0 (frames rendered into testing/)')
        from ddml.analysis.runs import demo_dataset
        dataset = args.dataset or 'kitti'
        defaults = dict(dataset=dataset, iters=DEFAULT_BENCH_ITERS,
                        eval_split='val',
                        data_root=demo_dataset(dataset).default_root,
                        num_train=DEFAULT_NUM_TRAIN, num_val=DEFAULT_NUM_VAL,
                        num_test=DEFAULT_NUM_TEST, data_seed=0,
                        variants=dataset_variants(dataset,
                                                  default_only=True))
        for key, value in defaults.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        try:
            check_variants(args.variants, dataset, '--variants')
        except ValueError as err:
            parser.error(str(err))
    if args.work_dir is None:
        dataset = args.dataset or (_peek_dataset(args.protocol)
                                   if args.protocol else 'kitti')
        args.work_dir = 'work_dirs/efficacy' + (
            '' if dataset == 'kitti' else f'-{dataset}')
    return args


def _peek_dataset(protocol: str) -> str:
    """A protocol file's dataset, for the default work dir (the file is
    checked later, by load_protocol)."""
    try:
        with open(protocol) as f:
            return str(json.load(f).get('dataset', 'kitti'))
    except (OSError, ValueError, AttributeError):
        return 'kitti'


def check_args(args, settings=None) -> None:
    """Check the files and folders (and a protocol's data) before
    anything is rendered, trained, written or detached: raises
    :class:`ddml.engine.cli.UsageError`, one line naming the option or
    file and the fix.

    Args:
        args: :func:`parse_args`'s result.
        settings (dict, optional): :func:`_protocol_settings` of a
            ``--protocol`` run.
    """
    from ddml.analysis.runs import check_data_root
    cli.check_out_dir(args.work_dir, '--work-dir')
    if args.report_only:  # reads the records, not the data
        return
    if settings is not None:
        check_data_root(osp.join(REPO_ROOT, settings['data_root']),
                        settings['dataset'],
                        option=f'{args.protocol}: data.root')
        return
    check_data_root(osp.join(REPO_ROOT, args.data_root), args.dataset,
                    args.skip_data, ('train', args.eval_split))


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
    from ddml.analysis.efficacy import (columns_for, efficacy_report,
                                        efficacy_tables)
    columns = columns_for(args.dataset)
    text = (f'iters={args.iters}, split {args.eval_split}, data '
            f'{osp.abspath(args.data_root)}'
            f'{"" if args.dataset == "kitti" else f" ({args.dataset})"}'
            f'\n\n{efficacy_tables(rows, columns=columns)}\n\n'
            f'{efficacy_report(rows, columns=columns)}\n')
    path = osp.join(work_dir, 'efficacy.md')
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)
    with open(osp.join(work_dir, 'efficacy.json'), 'w') as f:
        json.dump(dict(args=vars(args), rows=rows), f, indent=1, default=str)
    return text


def _protocol_settings(args) -> dict:
    """The protocol's run settings, as the plain benchmark's arguments."""
    from ddml.analysis.protocol import (ProtocolError, load_protocol,
                                        protocol_dataset, protocol_jobs)
    proto = load_protocol(args.protocol)
    dataset = protocol_dataset(proto)
    try:
        check_variants(proto['arms'], dataset, f'{args.protocol}: arms')
    except ValueError as err:
        raise ProtocolError(str(err))
    data = proto['data']
    return dict(proto=proto, dataset=dataset,
                jobs=protocol_jobs(proto, args.variants),
                iters=proto['iters'], split=proto['split'],
                data_root=data['root'], num_train=data['num_train'],
                num_val=data['num_val'], num_test=data['num_test'],
                data_seed=data['seed'],
                record_dir=osp.join(REPO_ROOT, proto['records']))


def _protocol_report(settings, log) -> int:
    from ddml.analysis.protocol import (ProtocolError, missing_runs,
                                        protocol_figure, protocol_records,
                                        protocol_report, reused_arms)
    proto = settings['proto']
    rows = protocol_records(proto, REPO_ROOT)
    missing = missing_runs(proto, rows)
    reused = reused_arms(proto)
    log(f'{proto["name"]}: {len(rows)} record(s) in '
        f'{settings["record_dir"]}'
        + ''.join(f', {a} from {d}' for a, d in reused.items())
        + f'; {len(missing)} run(s) of the protocol missing')
    path = osp.join(REPO_ROOT, proto['report'])
    figure = osp.splitext(path)[0] + '.png'
    try:
        protocol_figure(proto, rows, figure)
        text = protocol_report(proto, rows, osp.basename(figure))
    except ProtocolError as err:
        log(str(err))
        return 1
    with open(path, 'w') as f:
        f.write(text)
    print(text)
    log(f'report: {path}; figure: {figure}')
    return 0


def main(argv=None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    work_dir = osp.abspath(args.work_dir)
    settings = None
    if args.protocol is not None:  # checked before detaching
        from ddml.analysis.protocol import ProtocolError
        cli.check_file(args.protocol, '--protocol', 'give a protocol JSON '
                       'file, e.g. docs/efficacy/protocol.json')
        try:
            settings = _protocol_settings(args)
        except ProtocolError as err:
            print(f'benchmark_efficacy.py: error: {cli.one_line(err)}',
                  file=sys.stderr)
            return 2
    check_args(args, settings)
    if not args.foreground and not args.report_only:
        return _detach(raw, osp.join(work_dir, 'efficacy.log'))

    def log(msg):
        print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)

    if args.protocol is not None:
        if args.report_only:
            return _protocol_report(settings, log)
        jobs = settings['jobs']
        for key in ('dataset', 'iters', 'data_root', 'num_train', 'num_val',
                    'num_test', 'data_seed'):
            setattr(args, key, settings[key])
        args.eval_split = settings['split']
        record_dir = settings['record_dir']
        from ddml.analysis.protocol import (missing_runs, protocol_records,
                                            reused_arms)
        reused = reused_arms(settings['proto'])
        if reused:
            absent = missing_runs(settings['proto'],
                                  protocol_records(settings['proto'],
                                                   REPO_ROOT),
                                  list(reused))
            log(f'arms read from earlier records, not run here: '
                f'{", ".join(f"{a} ({d})" for a, d in reused.items())}; '
                f'{len(absent)} of their runs not there'
                + (' (the analysis waits for them)' if absent else ''))
    else:
        from ddml.analysis.efficacy import DEFAULT_SEEDS, benchmark_jobs
        seeds = {v: (args.seeds if args.seeds is not None
                     else DEFAULT_SEEDS.get(v, DEFAULT_SEEDS['qi']))
                 for v in args.variants}
        jobs = benchmark_jobs(seeds)
        record_dir = None
    os.chdir(REPO_ROOT)
    from ddml.analysis.efficacy import run_benchmark
    from ddml.analysis.runs import RunsFailed, ensure_dataset
    data_root = osp.abspath(args.data_root)
    os.makedirs(work_dir, exist_ok=True)
    if args.report_only:
        rows = []
        for variant, seed in jobs:
            path = osp.join(work_dir, variant, f'seed{seed}', 'result.json')
            if osp.isfile(path):
                with open(path) as f:
                    row = json.load(f)
                if row.get('iters') == args.iters and \
                        row.get('split', 'val') == args.eval_split and \
                        row.get('dataset', 'kitti') == args.dataset:
                    rows.append(row)
        if not rows:
            log(f'no finished {args.dataset} runs with --iters {args.iters} '
                f'on {args.eval_split} in {work_dir}')
            return 1
        print(_write_report(rows, args, work_dir))
        return 0
    cores = os.cpu_count() or 1
    parallel = args.parallel or max(1, min(2, cores))
    threads = max(1, cores // parallel)
    counts = {}
    for variant, _ in jobs:
        counts[variant] = counts.get(variant, 0) + 1
    log(f'efficacy{" (protocol " + args.protocol + ")" if args.protocol else ""}'
        f'{"" if args.dataset == "kitti" else " on " + args.dataset}'
        f': {len(jobs)} runs ('
        f'{", ".join(f"{v} x{n}" for v, n in counts.items())}), '
        f'{args.iters} iterations each, evaluated on {args.eval_split}, '
        f'{parallel} at a time with {threads} thread(s); data {data_root}; '
        f'load {os.getloadavg()[0]:.1f} on {cores} CPUs')
    if not args.skip_data:
        ensure_dataset(data_root, args.num_train, args.num_val,
                       args.data_seed, log=log, num_test=args.num_test,
                       dataset=args.dataset)
    start = time.perf_counter()
    on_result = None if args.protocol else \
        (lambda rows: _write_report(rows, args, work_dir))
    try:
        rows = run_benchmark(
            jobs, args.iters, work_dir, data_root,
            DATASET_CONFIGS[args.dataset], parallel=parallel,
            threads=threads, figures=args.figures, log=log,
            on_result=on_result, split=args.eval_split,
            record_dir=record_dir, blind=args.protocol is not None,
            dataset=args.dataset)
        failed = 0
    except RunsFailed as err:
        rows = [r for r in err.results if r is not None]
        failed = len(err.failures)
        log(str(err))
    minutes = (time.perf_counter() - start) / 60
    if args.protocol is not None:
        log(f'protocol runs finished in {minutes:.1f} min ({len(rows)} done, '
            f'{failed} failed); records in {record_dir}; analyse with '
            f'--protocol {args.protocol} --report-only')
        return 0 if not failed else 1
    if not rows:
        log('no run finished')
        return 1
    print(_write_report(rows, args, work_dir))
    log(f'efficacy benchmark finished in {minutes:.1f} min: '
        f'{osp.join(work_dir, "efficacy.md")}')
    return 0 if not failed else 1


if __name__ == '__main__':
    sys.exit(cli.run(main))
