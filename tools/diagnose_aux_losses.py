"""What do DDML's auxiliary losses do to the detector while it trains?

Trains the demo detector with DDML's variants (``--variants``, names of
``tools/benchmark_efficacy.py``: ddml, qi, dmap, ddml-release, metricdepth)
with :class:`ddml.engine.AuxLossDiagnosticsHook`, which every
``--interval`` iterations records, on the iteration's own batch, the
gradient of each loss at the shared feature map (its size relative to the
detector's own losses and its cosine with them), the scale of the map and of
the object descriptors, and where the batch's object pairs lie against the
quasi-isometric bounds ``d/K - B <= e <= K d + B``. Then it evaluates each
model on the val split (design choices are made there; the held-out split
is left for claims) and draws the records over training
(``<work-dir>/figures/aux_diagnostics.png``) and the val descriptor
distances against depth gaps with the bounds (``<name>_pairs.png``)::

    python tools/diagnose_aux_losses.py --variants ddml qi --seed 0
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)
from run_demo import (DEFAULT_ITERS, DEFAULT_NUM_TEST,  # noqa: E402
                      DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL)

#: iterations shown in the printed table (the last one is --iters)
_TABLE_AT = (1, 300, 600)
_TABLE_KEYS = ('share/loss_qi', 'cos/loss_qi', 'share/loss_obj_depth',
               'cos/loss_obj_depth', 'feat_rms', 'desc_norm', 'pairs_below',
               'pairs_inside', 'pairs_above', 'median_e_per_m')


def parse_args(argv=None):
    """The options, each value checked; then the folders
    (:func:`check_args`). A mistake: one line, exit status 2."""
    from ddml.analysis.efficacy import VARIANTS
    choices = [v for v in VARIANTS if v != 'baseline']
    positive, count = cli.int_at_least(1), cli.int_at_least(0)
    parser = cli.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--variants', nargs='+', default=['ddml', 'qi'],
                        choices=choices)
    parser.add_argument('--seed', type=count, default=0)
    parser.add_argument('--iters', type=positive, default=DEFAULT_ITERS)
    parser.add_argument('--interval', type=positive, default=50,
                        help='iterations between two records')
    parser.add_argument('--data-root', default='data/demo_kitti',
                        help='the demo data (rendered there if missing)')
    parser.add_argument('--num-train', type=positive,
                        default=DEFAULT_NUM_TRAIN)
    parser.add_argument('--num-val', type=positive, default=DEFAULT_NUM_VAL)
    parser.add_argument('--num-test', type=count, default=DEFAULT_NUM_TEST,
                        help='held-out frames rendered beside (not used '
                        'here)')
    parser.add_argument('--work-dir', default='work_dirs/diagnose')
    parser.add_argument('--parallel', type=positive, default=None,
                        help='trainings at the same time (default: one per '
                        'core, at most 2)')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the runs in --work-dir')
    args = parser.parse_args(argv)
    twice = sorted({v for v in args.variants if args.variants.count(v) > 1})
    if twice:
        parser.error(f'--variants: {" ".join(twice)} given twice; give each '
                     'once')
    return args


def run_dir(work_dir: str, variant: str, seed: int) -> str:
    """Where the training of ``variant`` with ``seed`` goes."""
    return osp.join(work_dir, f'{variant}_seed{seed}')


def check_args(args) -> None:
    """Check the folders before anything is rendered or trained (paths
    relative to the repository, where :func:`main` runs): raises
    :class:`ddml.engine.cli.UsageError`, one line naming the option and the
    fix."""
    from ddml.analysis.runs import check_data_root
    work_dir = osp.join(REPO_ROOT, args.work_dir)
    cli.check_out_dir(work_dir, '--work-dir')
    check_data_root(osp.join(REPO_ROOT, args.data_root), 'kitti')
    if args.skip_train:
        for variant in args.variants:
            latest = osp.join(run_dir(work_dir, variant, args.seed),
                              'last_checkpoint')
            if not osp.isfile(latest):
                raise cli.MissingPathError(
                    f'--skip-train: no run of {variant} with --seed '
                    f'{args.seed} in {args.work_dir} ({latest} is missing); '
                    'leave out --skip-train to train it')


def _config_with_hook(config: str, interval: int, path: str) -> str:
    """Write a config file (``path``) that is ``config`` plus the
    diagnostics hook (outside the run's folder, where mmengine dumps the
    merged config under the same name)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.abspath(config)!r}]\n"
                "custom_hooks = [dict(type='AuxLossDiagnosticsHook', "
                f"interval={int(interval)})]\n")
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    os.chdir(REPO_ROOT)
    from benchmark_efficacy import CONFIGS

    from ddml.analysis.efficacy import VARIANTS
    from ddml.analysis.gradient_diagnostics import (plot_diagnostics,
                                                    read_diagnostics)
    from ddml.analysis.model_eval import evaluate_run
    from ddml.analysis.runs import (ensure_dataset, parse_cfg_options,
                                    schedule_options, train_runs)
    from ddml.models.defaults import QI_K

    def log(msg):
        print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)

    work_dir, data_root = osp.abspath(args.work_dir), osp.abspath(
        args.data_root)
    ensure_dataset(data_root, args.num_train, args.num_val, 0, log=log,
                   num_test=args.num_test)
    cores = os.cpu_count() or 1
    parallel = args.parallel or max(1, min(2, cores, len(args.variants)))
    threads = max(1, cores // parallel)
    jobs, runs = [], {}
    for variant in args.variants:
        _, role, extra = VARIANTS[variant]
        folder = run_dir(work_dir, variant, args.seed)
        config = _config_with_hook(
            CONFIGS[role], args.interval,
            osp.join(work_dir, 'configs', f'{variant}_diagnostics.py'))
        runs[variant] = dict(config=CONFIGS[role], extra=extra,
                             run_dir=folder)
        if args.skip_train:
            continue
        opts = schedule_options(args.iters, args.seed, data_root, extra=extra)
        jobs.append(dict(config=config, work_dir=folder, cfg_options=opts,
                         name=variant, threads=threads))
    log(f'diagnostics: {", ".join(args.variants)}, seed {args.seed}, '
        f'{args.iters} iterations, a record every {args.interval}; '
        f'{parallel} at a time')
    train_runs(jobs, parallel=parallel, log=log)
    fig_dir = osp.join(work_dir, 'figures')
    series, summary = {}, {}
    for variant, run in runs.items():
        with open(osp.join(run['run_dir'], 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        row = evaluate_run(variant, run['config'], ckpt, fig_dir,
                           data_root=data_root, split='val',
                           cfg_options=parse_cfg_options(run['extra']),
                           progress=False)
        series[variant] = read_diagnostics(
            osp.join(run['run_dir'], 'aux_diagnostics.jsonl'))
        summary[variant] = dict(
            val={k: row.get(k) for k in (
                'AP3D_mod_loose', 'APBEV_mod_loose', 'cd_Car_mAP',
                'cd_depth_abs_err_0-20m', 'spearman', 'frac_inside',
                'frac_above', 'frac_below', 'mean_desc_dist')},
            figures=row['figures'])
    figure = plot_diagnostics(
        series, osp.join(fig_dir, 'aux_diagnostics.png'), QI_K,
        title=f'demo detector, seed {args.seed}, {args.iters} iterations')
    at = list(_TABLE_AT) + [args.iters]
    print(f'\n{"variant":12s} {"iter":>5s} ' +
          ' '.join(f'{k.split("/")[-1][:14]:>14s}' for k in _TABLE_KEYS))
    for variant, cols in series.items():
        for it in at:
            if it not in cols['iter']:
                continue
            i = cols['iter'].index(it)
            print(f'{variant:12s} {it:5d} ' + ' '.join(
                f'{cols[k][i]:14.4f}' if k in cols else f'{"-":>14s}'
                for k in _TABLE_KEYS))
    with open(osp.join(work_dir, 'diagnostics.json'), 'w') as f:
        json.dump(dict(args=vars(args), summary=summary, series=series), f,
                  indent=1)
    print(f'\nfigures: {figure}')
    for variant, s in summary.items():
        print(f'{variant} (val): ' + ', '.join(
            f'{k} {v:.3f}' for k, v in s['val'].items()
            if isinstance(v, (int, float))))
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
