"""Time QuasiIsometricLoss forward + backward on the CPU or a CUDA GPU.

For each number of objects N, each mode (``hinge``, ``official`` with the
release settings) and each ``chunk_size`` (None: 128-row bands, and
``--chunk-size``) it reports the median wall time of one forward +
backward and, on CUDA, the peak memory the run allocated
(``torch.cuda.max_memory_allocated`` above what the inputs hold). A naive
full-matrix implementation (all N x N distances, autograd) runs beside it
as the baseline and as a check of the value and gradient; it is skipped
when its matrices would not fit in memory, and reported as out of memory
when CUDA runs out.

CUDA timings are synchronised (``torch.cuda.synchronize`` before the start
and after the backward). On the CPU the goal is < 1 s for N = 4096 on 2
cores.

Usage::

    python tools/benchmark_qi_loss.py [--num 4096] [--channels 64]
        [--repeats 7] [--chunk-size 512] [--threads N]
    python tools/benchmark_qi_loss.py --device cuda
        [--num 4096 16384 65536] [--json results.json]
"""
from __future__ import annotations  # torch is imported once the args pass

import argparse
import json
import os
import os.path as osp
import platform
import re
import statistics
import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)

if TYPE_CHECKING:
    from torch import Tensor

torch = QuasiIsometricLoss = None  # imported by _import_torch()


def _import_torch() -> None:
    """torch and the loss, imported after the arguments are checked."""
    global torch, QuasiIsometricLoss
    import torch

    from ddml.models.losses import QuasiIsometricLoss


GOAL_S = 1.0
CPU_NUMS = (4096, )
CUDA_NUMS = (4096, 16384, 65536)
K, B, EPS = 1.5, 0.5, 10.0
RELEASE = dict(temperature=10.0, detach_target=True, loss_weight=0.5)
# float32 N x N matrices the naive form holds at its peak (distances, masks,
# terms and their autograd buffers), to skip sizes that cannot fit.
NAIVE_MATRICES = 12


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The options, each checked: a mistake stops with one line and exit
    status 2 before torch is imported."""
    positive, above0 = cli.int_at_least(1), cli.float_above(0)
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--device',
        default='cpu',
        help="'cpu' or 'cuda' (or 'cuda:1'). Defaults to cpu.")
    parser.add_argument(
        '--num',
        type=cli.int_at_least(2),
        nargs='+',
        default=None,
        help=f'objects N; default {CPU_NUMS[0]} on the CPU, '
        f'{" ".join(map(str, CUDA_NUMS))} on CUDA')
    parser.add_argument(
        '--channels', type=positive, default=64,
        help='descriptor channels C')
    parser.add_argument(
        '--repeats',
        type=positive,
        default=None,
        help='timed runs (median shown); default 7 on the CPU, 5 on CUDA')
    parser.add_argument(
        '--chunk-size', type=positive, default=512, help='rows per chunk')
    parser.add_argument(
        '--max-depth',
        type=above0,
        default=60.0,
        help='depths are uniform in (0, max-depth] metres')
    parser.add_argument(
        '--scale',
        type=above0,
        default=0.4,
        help='descriptor std; 0.4 puts pairs in both U and L of the '
        "'official' form (with std 1 L is empty and it stops early)")
    parser.add_argument(
        '--no-naive',
        action='store_true',
        help='skip the naive full-matrix baseline')
    parser.add_argument(
        '--threads', type=positive, default=None, help='torch threads')
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    parser.add_argument(
        '--json', default=None, help='also write the results to this file')
    args = parser.parse_args(argv)
    if not re.fullmatch(r'cpu|cuda(:\d+)?', args.device):
        parser.error(f"--device {args.device!r}: give 'cpu', 'cuda' or "
                     "'cuda:N'")
    if args.json is not None:
        try:
            cli.check_out_file(args.json, '--json', ('.json', ))
        except cli.UsageError as err:
            parser.error(str(err))
    return args


def naive_qi_loss(feats: Tensor, depths: Tensor, mode: str) -> Tensor:
    """The loss over the full N x N matrix with autograd (the baseline).

    Same definition as :class:`QuasiIsometricLoss` with ``K``, ``B``,
    ``EPS`` (and :data:`RELEASE` for ``official``): pairs ``i < j`` with
    ``0 < d_ij <= eps``; ``e_ij`` from the Gram matrix, floored at
    ``1e-12``; ``official`` detaches ``f_j`` of each pair.

    Args:
        feats (Tensor): Descriptors (N, C), float32, requires grad.
        depths (Tensor): Depths (N,) in metres.
        mode (str): ``'hinge'`` or ``'official'``.

    Returns:
        Tensor: Scalar loss.
    """
    f = feats - feats.detach().mean(dim=0, keepdim=True)
    cols = f.detach() if mode == 'official' else f
    sq = (f * f).sum(1)[:, None] + (cols * cols).sum(1)[None, :] \
        - 2.0 * f @ cols.t()
    e = sq.clamp(min=1e-12).sqrt()
    d = (depths[None, :] - depths[:, None]).abs()
    upper = torch.ones_like(d, dtype=torch.bool).triu(diagonal=1)
    pairs = upper & (d > 0) & (d <= EPS)
    u = e - K * d - B
    low = d / K - B - e
    if mode == 'hinge':
        return (u.clamp(min=0) + low.clamp(min=0))[pairs].mean()
    T = RELEASE['temperature']
    in_u = pairs & (u > 0)
    in_l = pairs & (low > 0)
    S = torch.exp(-low[in_l] / T).sum()
    p = torch.exp(-u[in_u] / T)
    return RELEASE['loss_weight'] * (-torch.log(p / (p + S))).mean()


def naive_bytes(num: int) -> int:
    return NAIVE_MATRICES * 4 * num * num


def available_bytes(device: torch.device) -> int:
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError):  # not available: assume it fits
        return 1 << 62


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[Tensor, Tensor], Tensor], feats: Tensor,
              depths: Tensor) -> Dict:
    """One forward + backward of ``fn`` on a fresh copy of ``feats``.

    Returns:
        dict: ``wall`` seconds (CUDA-synchronised), ``cpu`` process CPU
        seconds (all threads), ``peak`` MiB allocated above the inputs
        (CUDA only, else None), the ``value`` and the ``grad``.
    """
    device = feats.device
    f = feats.clone().requires_grad_(True)
    sync(device)
    base = 0
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    cpu = time.process_time()
    start = time.perf_counter()
    value = fn(f, depths)
    value.backward()
    sync(device)
    wall = time.perf_counter() - start
    peak = None
    if device.type == 'cuda':
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return dict(wall=wall, cpu=time.process_time() - cpu, peak=peak,
                value=float(value.detach()), grad=f.grad)


def run_case(fn: Callable[[Tensor, Tensor], Tensor], feats: Tensor,
             depths: Tensor, repeats: int) -> Dict:
    """Warm-up, then ``repeats`` timed runs: medians, the largest peak and
    the last value and gradient."""
    time_once(fn, feats, depths)
    runs = [time_once(fn, feats, depths) for _ in range(repeats)]
    times = [r['wall'] for r in runs]
    peaks = [r['peak'] for r in runs if r['peak'] is not None]
    return dict(
        median_s=statistics.median(times),
        min_s=min(times),
        max_s=max(times),
        cpu_s=statistics.median(r['cpu'] for r in runs),
        peak_mib=max(peaks) if peaks else None,
        value=runs[-1]['value'],
        grad=runs[-1]['grad'])


def describe_machine(device: torch.device) -> str:
    cpu = (f'{platform.machine()} {platform.processor() or ""}'
           f'({os.cpu_count()} logical CPUs visible), {platform.system()} '
           f'{platform.release()}, load average {os.getloadavg()[0]:.2f}')
    if device.type != 'cuda':
        return cpu
    props = torch.cuda.get_device_properties(device)
    return (f'{torch.cuda.get_device_name(device)} '
            f'({props.total_memory / 2**30:.0f} GiB, compute capability '
            f'{props.major}.{props.minor}), CUDA {torch.version.cuda}; '
            f'host: {cpu}')


def naive_case(num: int, mode: str, feats: Tensor, depths: Tensor,
               repeats: int) -> Dict:
    """The naive baseline, or why it did not run."""
    need = naive_bytes(num)
    if need > 0.8 * available_bytes(feats.device):
        return dict(skipped=f'needs ~{need / 2**30:.0f} GiB of N x N '
                    'matrices')
    try:
        return run_case(lambda f, z: naive_qi_loss(f, z, mode), feats,
                        depths, repeats)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return dict(skipped='CUDA out of memory')


def format_row(res: Dict, device: torch.device) -> str:
    """One result as text: times, peak memory, value, and the difference
    to the naive baseline."""
    if 'skipped' in res:
        return f'skipped: {res["skipped"]}'
    text = (f'median {res["median_s"]:.4f} s (min {res["min_s"]:.4f}, '
            f'max {res["max_s"]:.4f})')
    if device.type == 'cpu':
        text += f' CPU {res["cpu_s"]:.3f} s'
    if res['peak_mib'] is not None:
        text += f' peak {res["peak_mib"]:.0f} MiB'
    text += f' loss {res["value"]:.5f}'
    if 'naive_loss_diff' in res:
        text += (f' vs naive: |d loss| {res["naive_loss_diff"]:.1e}, '
                 f'max|d grad|/max|grad| {res["naive_grad_diff"]:.1e}')
    return text


def compare_to_naive(res: Dict, naive: Optional[Dict]) -> None:
    """Add the differences of ``res`` to the naive baseline (in place)."""
    if naive is None or 'skipped' in naive or 'skipped' in res:
        return
    scale = float(naive['grad'].abs().max().clamp(min=1e-30))
    res['naive_loss_diff'] = abs(res['value'] - naive['value'])
    res['naive_grad_diff'] = float(
        (res['grad'] - naive['grad']).abs().max()) / scale


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    _import_torch()
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise cli.SetupError(
            f'--device {args.device}: CUDA is not available (torch '
            f'{torch.__version__}, built with CUDA {torch.version.cuda}); '
            'run on a CUDA machine or use --device cpu.')
    if device.type == 'cuda' and device.index is not None and \
            device.index >= torch.cuda.device_count():
        raise cli.SetupError(
            f'--device {args.device}: this machine has '
            f'{torch.cuda.device_count()} CUDA device(s); give cuda:0 to '
            f'cuda:{torch.cuda.device_count() - 1}')
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    nums = args.num or (CUDA_NUMS if device.type == 'cuda' else CPU_NUMS)
    repeats = args.repeats or (5 if device.type == 'cuda' else 7)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f'machine: {describe_machine(device)}')
    print(f'torch {torch.__version__}, device {device}, CPU threads: '
          f'{torch.get_num_threads()}')
    timing = ('CUDA-synchronised' if device.type == 'cuda' else
              f'goal < {GOAL_S:.1f} s on 2 cores')
    print(f'C={args.channels} (std {args.scale}), depths uniform in '
          f'(0, {args.max_depth}] m, median of {repeats} runs after 1 '
          f'warm-up, {timing}')
    print("'official' uses the release settings (temperature=10, "
          'detach_target=True, loss_weight=0.5); peak = memory allocated '
          'by one forward + backward above its inputs')
    results: List[Dict] = []
    all_ok = True
    for num in nums:
        gen = torch.Generator().manual_seed(args.seed)
        feats = torch.randn(num, args.channels, generator=gen) * args.scale
        depths = (1 - torch.rand(num, generator=gen)) * args.max_depth
        feats, depths = feats.to(device), depths.to(device)
        for mode in ('hinge', 'official'):
            extra = RELEASE if mode == 'official' else {}
            naive = None if args.no_naive else naive_case(
                num, mode, feats, depths, repeats)
            rows = []
            for chunk in (None, args.chunk_size):
                loss = QuasiIsometricLoss(
                    K=K, B=B, eps=EPS, mode=mode, chunk_size=chunk, **extra)
                rows.append((f'ddml chunk_size={chunk}',
                             run_case(loss, feats, depths, repeats)))
            if naive is not None:
                rows.append(('naive full matrix', naive))
            for impl, res in rows:
                is_naive = impl.startswith('naive')
                if not is_naive:
                    compare_to_naive(res, naive)
                line = f'N={num:6d} mode={mode:8s} {impl:22s} ' + \
                    format_row(res, device)
                if device.type == 'cpu' and not is_naive:
                    ok = res['median_s'] < GOAL_S
                    all_ok &= ok
                    line += '  OK' if ok else '  SLOW'
                print(line, flush=True)
                results.append(
                    dict(num=num, mode=mode, impl=impl,
                         **{k: v for k, v in res.items() if k != 'grad'}))
        del feats, depths
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    if device.type == 'cpu':
        print('all within goal' if all_ok else 'some runs exceed the goal')
        print(f'load average now {os.getloadavg()[0]:.2f}; wall times '
              'depend on the load of the machine, CPU is the process CPU '
              'time summed over threads')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    machine=describe_machine(device),
                    torch=torch.__version__,
                    device=str(device),
                    channels=args.channels,
                    repeats=repeats,
                    results=results),
                f,
                indent=1)
        print(f'wrote {args.json}')


if __name__ == '__main__':
    cli.run(main)  # a user's mistake: one line on stderr, exit status 2
