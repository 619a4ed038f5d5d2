"""Measure what DDML's additions cost: training step, inference, parameters.

The command line of :func:`ddml.benchmarks.measure_overhead` (see its
module for what is timed). Example (slow on CPU; run in the background
with a log):

    python tools/benchmark_overhead.py --iters 2 --repeats 3 \
        --height 384 --width 1280
"""
import argparse
import json
from functools import partial

import torch

from ddml.benchmarks import format_overhead, measure_overhead
from ddml.benchmarks.overhead import DEFAULT_CONFIG


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Training / inference overhead of DDML vs the baseline')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='baseline config (file or mmdet3d::rel/path)')
    parser.add_argument('--iters', type=int, default=2,
                        help='timed iterations per model and repeat')
    parser.add_argument('--repeats', type=int, default=3,
                        help='interleaved repeats')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed iterations per model first')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--height', type=int, default=384)
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--objects', type=int, default=8,
                        help='objects per image')
    parser.add_argument('--down-ratio', type=int, default=4,
                        help="SMOKE's AffineResize down_ratio (trans_mat)")
    parser.add_argument('--metric', action='store_true',
                        help='also enable metric_loss and dense_metric_loss')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--flops', action='store_true',
                        help='also count FLOPs of one training step each')
    parser.add_argument('--json', default=None, help='also write results')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = measure_overhead(
        args.config, args.iters, args.repeats, args.warmup, args.batch_size,
        args.height, args.width, args.objects, args.down_ratio, args.metric,
        args.device, args.flops, log=partial(print, flush=True))
    print('\n' + format_overhead(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
