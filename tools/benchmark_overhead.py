"""Measure what DDML's additions cost: training step, inference, parameters.

The command line of :func:`ddml.benchmarks.measure_overhead` (see its
module for what is timed). By default it measures, one after the other,
each baseline config of ``--models`` against its ``ddml_*`` sibling at
KITTI resolution (3x384x1280):

* ``smoke-demo``: the light SMOKE demo (configs/demo/smoke_r18-half_*);
* ``monodle-demo``: the MonoDLE demo detector (configs/demo/monodle_*);
* ``smoke``: SMOKE (DLA-34, deformable-convolution neck; configs/smoke/).

``--device cuda`` puts the models and the batch on the GPU, synchronises
CUDA around every timed call and reports peak memory
(``torch.cuda.max_memory_allocated``); its defaults are batch 8 (the
configs' batch per GPU), 3 warm-up, 5 repeats x 5 iterations. On the CPU
they are batch 1, 1 warm-up, 3 repeats x 2 iterations. Examples (the CPU
is slow; run it in the background with a log):

    python tools/benchmark_overhead.py --device cuda
    python tools/benchmark_overhead.py --models smoke --iters 1 --repeats 5
    python tools/benchmark_overhead.py --config my_baseline.py \\
        --ddml-config my_ddml.py

A model that fails (e.g. SMOKE's deformable convolutions where mmcv has no
compiled ops) is reported and the others still run; the exit status is 1
then.
"""
import argparse
import json
import os.path as osp
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
#: Name -> (baseline config, its ddml_* sibling).
PAIRS: Dict[str, Tuple[str, str]] = {
    'smoke-demo':
    (str(CONFIGS / 'demo' / 'smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-'
         'mono3d.py'),
     str(CONFIGS / 'demo' / 'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-'
         'kitti-mono3d.py')),
    'monodle-demo':
    (str(CONFIGS / 'demo' / 'monodle_r18-half_secondfpn_1xb8-1200iter_demo-'
         'kitti-mono3d.py'),
     str(CONFIGS / 'demo' / 'ddml_monodle_r18-half_secondfpn_1xb8-1200iter_'
         'demo-kitti-mono3d.py')),
    'smoke':
    (str(CONFIGS / 'smoke' / 'smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-'
         'mono3d.py'),
     str(CONFIGS / 'smoke' / 'ddml_smoke_dla34_dlaneck_gn-all_4xb8-6x_'
         'kitti-mono3d.py')),
}
#: Defaults of --iters, --repeats, --warmup, --batch-size per device.
DEFAULTS = dict(
    cpu=dict(iters=2, repeats=3, warmup=1, batch_size=1),
    cuda=dict(iters=5, repeats=5, warmup=3, batch_size=8))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The options, each checked (the configs and --json's folder too):
    a mistake stops with one line and exit status 2 before torch is
    imported."""
    positive = cli.int_at_least(1)
    parser = cli.ArgumentParser(
        description='Training / inference overhead of DDML vs the baseline')
    parser.add_argument(
        '--models', nargs='+', choices=list(PAIRS), default=list(PAIRS),
        help='baseline / ddml_* config pairs to measure (default: all)')
    parser.add_argument(
        '--config', default=None,
        help='measure this baseline config (file or mmdet3d::rel/path) '
        'instead of --models')
    parser.add_argument(
        '--ddml-config', default=None,
        help="with --config: the DepthDiscriminativeDetector config that "
        "wraps it (default: the wrapper's defaults around --config)")
    parser.add_argument(
        '--device', choices=('cpu', 'cuda'), default='cpu',
        help='where the models and the batch live; cuda: synchronised '
        'timing and peak memory (default: cpu)')
    parser.add_argument('--iters', type=positive, default=None,
                        help='timed iterations per model and repeat '
                        '(default: cpu 2, cuda 5)')
    parser.add_argument('--repeats', type=positive, default=None,
                        help='interleaved repeats (default: cpu 3, cuda 5)')
    parser.add_argument('--warmup', type=cli.int_at_least(0), default=None,
                        help='untimed iterations per model first '
                        '(default: cpu 1, cuda 3)')
    parser.add_argument('--batch-size', type=positive, default=None,
                        help='images per batch (default: cpu 1, cuda 8)')
    parser.add_argument('--height', type=cli.int_at_least(32), default=384)
    parser.add_argument('--width', type=cli.int_at_least(32), default=1280)
    parser.add_argument('--objects', type=positive, default=8,
                        help='objects per image')
    parser.add_argument('--down-ratio', type=positive, default=4,
                        help="SMOKE's AffineResize down_ratio (trans_mat)")
    parser.add_argument('--metric', action='store_true',
                        help='also enable metric_loss and dense_metric_loss')
    parser.add_argument('--threads', type=positive, default=None,
                        help='torch.set_num_threads')
    parser.add_argument('--flops', action='store_true',
                        help='also count FLOPs of one training step each')
    parser.add_argument('--json', default=None, help='also write results')
    args = parser.parse_args(argv)
    if args.ddml_config is not None and args.config is None:
        parser.error('--ddml-config needs --config (the baseline it wraps)')
    try:
        for option in ('config', 'ddml_config'):
            if getattr(args, option) is not None:
                cli.check_config(getattr(args, option),
                                 '--' + option.replace('_', '-'))
        if args.json is not None:
            cli.check_out_file(args.json, '--json', ('.json', ))
    except cli.UsageError as err:
        parser.error(str(err))
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    from ddml.benchmarks import format_overhead, measure_overhead
    from ddml.benchmarks.overhead import describe_device, resolve_device
    try:
        device = resolve_device(args.device)
    except RuntimeError as err:  # no GPU here
        raise cli.SetupError(f'--device {args.device}: {err}') from None
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = [(args.config, args.ddml_config)] if args.config else \
        [PAIRS[name] for name in args.models]
    log = partial(print, flush=True)
    log(f'device {device}: {describe_device(device)}')
    runs, failed = [], []
    for config, ddml_config in pairs:
        try:
            results = measure_overhead(
                config, iters=args.iters, repeats=args.repeats,
                warmup=args.warmup, batch_size=args.batch_size,
                height=args.height, width=args.width, objects=args.objects,
                down_ratio=args.down_ratio, metric=args.metric,
                device=device, flops=args.flops, log=log,
                ddml_config=ddml_config)
        except Exception as err:  # report it, measure the others
            traceback.print_exc()
            failed.append(
                dict(config=config, ddml_config=ddml_config,
                     error=f'{type(err).__name__}: {err}'))
            log(f'FAILED {config}: {type(err).__name__}: {err}\n')
            continue
        runs.append(results)
        log('\n' + format_overhead(results) + '\n')
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(device=str(device), machine=describe_device(device),
                     runs=runs, failed=failed), f, indent=2)
    for fail in failed:
        print(f"failed: {fail['config']}: {fail['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
