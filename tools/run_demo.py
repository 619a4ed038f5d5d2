"""The ddml demo: synthetic KITTI- or Waymo-format data, baseline vs. method.

``make demo`` runs this script. It renders the synthetic dataset into
``--data-root`` (once; Cars only, 4-30 m, at 1/3 of KITTI's resolution),
trains the demo baseline (MonoDLE's head on a half-width ResNet-18) and the
same detector with
the method (``--method ddml``: quasi-isometric loss + object-wise depth-map
head; ``ddml-release``: the loss exactly as the authors released it;
``metricdepth``: MetricDepth's multi-range loss + depth-map head) with the
same seed and schedule, side by side, evaluates both on the val split
(KITTI AP40, centre-distance AP, depth error by range, descriptor
statistics; ``--eval-split test`` evaluates on the held-out split instead),
prints a table and writes figures under ``--work-dir``. The
logic is :func:`ddml.analysis.demo.run_demo`.

``--dataset waymo`` runs it on synthetic Waymo-format data (mmdet3d's
Waymo converter layout and infos, Waymo's front camera at 288x192, Cars
at 4-50 m) with the Waymo demo configs, evaluated with WaymoMono3DMetric
(AP/APH LEVEL_1/2 by range, LET-3D-AP/APL/APH) instead of KITTI's AP40;
data in ``data/demo_waymo``, results in ``work_dirs/demo-waymo``.

Longer runs: ``python tools/run_demo.py --iters 3000``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)

_DEMO = 'configs/demo/'
_NAME = 'monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py'
BASELINE_CONFIG = _DEMO + _NAME
METHOD_CONFIGS = {
    'ddml': _DEMO + 'ddml_' + _NAME,
    'ddml-release': _DEMO + 'ddml-release_' + _NAME,
    'metricdepth': _DEMO + 'ddml-metricdepth_' + _NAME,
}
_WAYMO_NAME = 'monodle_r18-half_secondfpn_1xb8-1200iter_demo-waymo-mono3d.py'
#: Config role -> path, per dataset (``--dataset``). Waymo has no
#: ddml-release config (the release's sample rule needs KITTI's
#: difficulty) and no MetricDepth one.
DATASET_CONFIGS = {
    'kitti': dict(baseline=BASELINE_CONFIG, **METHOD_CONFIGS),
    'waymo': dict(baseline=_DEMO + _WAYMO_NAME,
                  ddml=_DEMO + 'ddml_' + _WAYMO_NAME),
}
# Chosen from the learning curve in docs/benchmarks.md ("Demo"); the Waymo
# demo configs train as many (their input costs as much per iteration).
DEFAULT_ITERS = 1200
DEFAULT_NUM_TRAIN = 1000
DEFAULT_NUM_VAL = 100
# The labelled held-out split (testing/): claims are made on it, design
# choices on val (docs/efficacy/protocol.md).
DEFAULT_NUM_TEST = 500


def method_configs(dataset: str) -> dict:
    """The method configs (role -> path, baseline left out) of a dataset."""
    return {k: v for k, v in DATASET_CONFIGS[dataset].items()
            if k != 'baseline'}


def parse_args(argv=None):
    """The options, each value checked (one line and exit status 2 on a
    mistake); the paths, with the options that go with them, are checked
    by :func:`ddml.analysis.demo.check_demo_args` when the demo starts."""
    positive, count = cli.int_at_least(1), cli.int_at_least(0)
    parser = cli.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--iters', type=positive, default=DEFAULT_ITERS,
                        help=f'training iterations per model (batch 8), '
                        f'default {DEFAULT_ITERS}')
    parser.add_argument('--num-train', type=positive,
                        default=DEFAULT_NUM_TRAIN,
                        help=f'training frames (default {DEFAULT_NUM_TRAIN})')
    parser.add_argument('--num-val', type=positive, default=DEFAULT_NUM_VAL,
                        help=f'validation frames (default {DEFAULT_NUM_VAL})')
    parser.add_argument('--num-test', type=count, default=DEFAULT_NUM_TEST,
                        help='held-out frames rendered into testing/ '
                        f'(default {DEFAULT_NUM_TEST})')
    parser.add_argument('--eval-split', choices=['val', 'test'],
                        default='val',
                        help='split the models are evaluated on: val '
                        '(default; the split the demo was designed on) or '
                        'test (held-out)')
    parser.add_argument('--seed', type=count, default=0,
                        help='seed of the data and of both trainings')
    parser.add_argument('--dataset', choices=sorted(DATASET_CONFIGS),
                        default='kitti',
                        help='synthetic data format: kitti (default) or '
                        'waymo (Waymo front camera, WaymoMono3DMetric)')
    parser.add_argument('--method', choices=sorted(METHOD_CONFIGS),
                        default='ddml', help='the variant to compare (waymo: '
                        f'{", ".join(sorted(method_configs("waymo")))})')
    parser.add_argument('--work-dir', default=None,
                        help='runs, figures and tables go here (default '
                        'work_dirs/demo, work_dirs/demo-waymo for waymo)')
    parser.add_argument('--data-root', default=None,
                        help='synthetic dataset root (default data/demo_kitti,'
                        ' data/demo_waymo for waymo)')
    parser.add_argument('--skip-data', action='store_true',
                        help='use --data-root as it is (no rendering)')
    parser.add_argument('--parallel', type=positive, default=None,
                        help='trainings at the same time (default: one per '
                        'core, at most 2)')
    parser.add_argument('--threads', type=positive, default=None,
                        help='torch/OpenMP threads per training process '
                        '(default: cores / parallel)')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the checkpoints in --work-dir')
    args = parser.parse_args(argv)
    methods = method_configs(args.dataset)
    if args.method not in methods:
        parser.error(f'--method {args.method}: no {args.dataset} config for '
                     f'it; with --dataset {args.dataset} choose from '
                     f'{sorted(methods)}')
    from ddml.analysis.runs import demo_dataset
    if args.data_root is None:
        args.data_root = demo_dataset(args.dataset).default_root
    if args.work_dir is None:
        args.work_dir = 'work_dirs/demo' + (
            '' if args.dataset == 'kitti' else f'-{args.dataset}')
    return args


def demo_configs(args) -> dict:
    """Model name -> config of the run: the baseline and ``--method``."""
    configs = DATASET_CONFIGS[args.dataset]
    return dict(baseline=configs['baseline'],
                **{args.method: configs[args.method]})


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    os.chdir(REPO_ROOT)  # configs and data paths are repository-relative
    from ddml.analysis.demo import run_demo
    # run_demo checks the paths and the options together first
    # (ddml.analysis.demo.check_demo_args): a mistake raises a UsageError
    # before anything is rendered, trained or written
    out = run_demo(
        demo_configs(args),
        data_root=args.data_root, work_dir=args.work_dir, iters=args.iters,
        num_train=args.num_train, num_val=args.num_val,
        num_test=args.num_test, eval_split=args.eval_split, seed=args.seed,
        threads=args.threads, parallel=args.parallel,
        skip_data=args.skip_data, skip_train=args.skip_train,
        log=lambda msg: print(msg, flush=True), dataset=args.dataset)
    print(out['table'])
    print('\n' + out['notes'])
    print('\nfigures:')
    for path in out['figures']:
        print(f'  {path}')
    work_dir = osp.abspath(args.work_dir)
    print(f'tables: {osp.join(work_dir, "demo_table.md")}, '
          f'{osp.join(work_dir, "demo_results.json")}')
    t = out['timings']
    print(f'\ndemo finished in {t["total_s"] / 60:.1f} min (data '
          f'{t["data_s"]:.0f} s, training {t["train_s"]:.0f} s, evaluation '
          f'{t["eval_s"]:.0f} s, report {t["report_s"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
