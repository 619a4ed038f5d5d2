"""Run a function in several CPU processes joined by a gloo process group.

What the tests of cross-process code need (descriptor gathering, the QI
loss and its gradient under DDP averaging) without a launcher or a GPU.
"""
import multiprocessing
import os
import socket
import traceback
from typing import Any, Callable, Dict

__all__ = ['free_port', 'run_in_gloo_processes']


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(fn: Callable[[int, int], Any], rank: int, world_size: int,
            port: int, queue) -> None:
    try:
        import torch
        import torch.distributed as torch_dist
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
        torch.set_num_threads(1)
        torch_dist.init_process_group(
            'gloo', rank=rank, world_size=world_size)
        result = fn(rank, world_size)
        torch_dist.destroy_process_group()
        queue.put((rank, True, result))
    except Exception:  # report to the parent instead of hanging
        queue.put((rank, False, traceback.format_exc()))


def run_in_gloo_processes(fn: Callable[[int, int], Any],
                          world_size: int,
                          timeout: float = 90.) -> Dict[int, Any]:
    """Call ``fn(rank, world_size)`` in ``world_size`` forked processes.

    Each process joins a gloo process group on 127.0.0.1 (one torch
    thread) before the call and leaves it after.

    Args:
        fn (Callable[[int, int], Any]): The work of one process; its result
            must be picklable (plain lists and numbers are safest).
        world_size (int): Number of processes.
        timeout (float): Seconds to wait for each result. Defaults to 90.

    Returns:
        dict[int, Any]: Rank -> what ``fn`` returned there.

    Raises:
        RuntimeError: When ``fn`` raised in a process, with its traceback.
    """
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_worker, args=(fn, rank, world_size, port, queue))
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    results, failures = {}, []
    try:
        for _ in range(world_size):
            rank, ok, value = queue.get(timeout=timeout)
            if ok:
                results[rank] = value
            else:
                failures.append(f'rank {rank}:\n{value}')
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    if failures:
        raise RuntimeError('a gloo process failed:\n' + '\n'.join(failures))
    return results
