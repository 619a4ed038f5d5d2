"""MonoFlex's training stability: the fixed head against variants with one
of mmdet3d 1.4's defects put back (docs/monoflex.md, "Stability")::

    OMP_NUM_THREADS=1 python tools/benchmark_monoflex_stability.py \\
        --data /tmp/monoflex_small --iters 150 --work-dir /tmp/mf_stab \\
        [--variants fixed upstream-multibin ...] [--batch-size 2]
    OMP_NUM_THREADS=1 python tools/benchmark_monoflex_stability.py \\
        --data /tmp/monoflex_small --work-dir /tmp/mf_stab --keypoint-check

The logic is :mod:`ddml.benchmarks.monoflex_stability`.
"""
import json
import os
import os.path as osp
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, osp.join(str(REPO), 'tools'))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)


def main(argv=None) -> int:
    positive = cli.int_at_least(1)
    parser = cli.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', type=Path, required=True,
                        help='demo-layout data (rendered there if missing)')
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--iters', type=positive, default=150)
    parser.add_argument('--num-train', type=positive, default=64)
    parser.add_argument('--num-val', type=positive, default=16)
    parser.add_argument('--variants', nargs='+', default=None,
                        metavar='VARIANT', help='default: all of '
                        'ddml.benchmarks.monoflex_stability.VARIANTS')
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    parser.add_argument('--batch-size', type=positive, default=8)
    parser.add_argument('--keypoint-check', action='store_true',
                        help='only compare the keypoint depths of exact '
                        'targets (fixed and upstream coder), no training')
    args = parser.parse_args(argv)
    cli.check_out_dir(str(args.work_dir), '--work-dir')
    if args.data.exists() and not args.data.is_dir():
        parser.error(f'--data {args.data}: is a file; give a folder (the '
                     'demo data is rendered there when missing)')
    args.data, args.work_dir = args.data.resolve(), args.work_dir.resolve()
    os.chdir(REPO)
    from ddml.benchmarks.monoflex_stability import (VARIANTS, ensure_data,
                                                    keypoint_depth_check,
                                                    summarise, train_run)
    cli.check_names(args.variants or (), VARIANTS, '--variants')
    args.variants = args.variants or list(VARIANTS)
    ensure_data(args.data, args.num_train, args.num_val)
    if args.keypoint_check:
        print(json.dumps(keypoint_depth_check(args.data)))
        return 0
    summaries = []
    for variant in args.variants:
        run = train_run(variant, args.data, args.work_dir / variant,
                        args.iters, batch_size=args.batch_size,
                        seed=args.seed)
        (args.work_dir / f'{variant}.json').write_text(json.dumps(run))
        summaries.append(summarise(run))
        print(json.dumps(summaries[-1]), flush=True)
    keys = list(summaries[0])
    print('| ' + ' | '.join(keys) + ' |')
    print('|' + ' --- |' * len(keys))
    for s in summaries:
        print('| ' + ' | '.join(
            f'{v:.3g}' if isinstance(v, float) else str(v)
            for v in s.values()) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
