"""Time QuasiIsometricLoss forward + backward on CPU.

Goal: < 1 s per forward + backward for N=4096 objects with C=64 descriptor
channels on 2 CPU cores, in both modes, with and without chunking.

Usage::

    python tools/benchmark_qi_loss.py [--num 4096] [--channels 64]
        [--repeats 5] [--chunk-size 512] [--threads N]
"""
import argparse
import os
import platform
import statistics
import time

from typing import Tuple

import torch

from ddml.models.losses import QuasiIsometricLoss

GOAL_S = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num', type=int, default=4096, help='objects N')
    parser.add_argument(
        '--channels', type=int, default=64, help='descriptor channels C')
    parser.add_argument(
        '--repeats', type=int, default=7, help='timed runs (median shown)')
    parser.add_argument(
        '--chunk-size', type=int, default=512, help='rows per chunk')
    parser.add_argument(
        '--max-depth',
        type=float,
        default=60.0,
        help='depths are uniform in (0, max-depth] metres')
    parser.add_argument(
        '--scale',
        type=float,
        default=0.4,
        help='descriptor std; 0.4 puts pairs in both U and L of the '
        "'official' form (with std 1 L is empty and it stops early)")
    parser.add_argument(
        '--threads', type=int, default=None, help='torch threads')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def time_once(loss: QuasiIsometricLoss, feats: torch.Tensor,
              depths: torch.Tensor) -> Tuple[float, float, float]:
    """Wall seconds and process CPU seconds (all threads) of one forward
    + backward, and the loss value."""
    f = feats.clone().requires_grad_(True)
    cpu = time.process_time()
    start = time.perf_counter()
    value = loss(f, depths)
    value.backward()
    wall = time.perf_counter() - start
    return wall, time.process_time() - cpu, value.item()


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    feats = torch.randn(args.num, args.channels, generator=gen) * args.scale
    depths = (1 - torch.rand(args.num, generator=gen)) * args.max_depth

    print(f'machine: {platform.machine()} {platform.processor() or ""} '
          f'({os.cpu_count()} logical CPUs visible), '
          f'{platform.system()} {platform.release()}, load average '
          f'{os.getloadavg()[0]:.2f}')
    print(f'torch {torch.__version__}, threads: {torch.get_num_threads()}')
    print(f'N={args.num}, C={args.channels} (std {args.scale}), '
          f'depths uniform in '
          f'(0, {args.max_depth}] m, median of {args.repeats} runs '
          f'(after 1 warm-up), goal < {GOAL_S:.1f} s on 2 cores')
    print("'official' uses the release settings (temperature=10, "
          'detach_target=True, loss_weight=0.5)')
    all_ok = True
    for mode in ('hinge', 'official'):
        for chunk in (None, args.chunk_size):
            kwargs = dict(K=1.5, B=0.5, eps=10.0, mode=mode,
                          chunk_size=chunk)
            if mode == 'official':
                kwargs.update(
                    temperature=10.0, detach_target=True, loss_weight=0.5)
            loss = QuasiIsometricLoss(**kwargs)
            _, _, value = time_once(loss, feats, depths)
            runs = [
                time_once(loss, feats, depths) for _ in range(args.repeats)
            ]
            times = [r[0] for r in runs]
            med = statistics.median(times)
            cpu = statistics.median(r[1] for r in runs)
            ok = med < GOAL_S
            all_ok &= ok
            print(f'mode={mode:8s} chunk_size={str(chunk):5s} '
                  f'median {med:.3f} s (min {min(times):.3f}, '
                  f'max {max(times):.3f}; CPU {cpu:.3f} s) loss {value:.4f}  '
                  f'{"OK" if ok else "SLOW"}')
    print('all within goal' if all_ok else 'some runs exceed the goal')
    print(f'load average now {os.getloadavg()[0]:.2f}; wall times depend '
          'on the load of the machine, CPU is the process CPU time summed '
          'over threads')


if __name__ == '__main__':
    main()
