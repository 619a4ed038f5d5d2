"""Running the demo's steps: synthetic data with a manifest, and training
through ddml's entry point (``python -m ddml.engine.train``) in
subprocesses, one or several at a time, with concise progress lines.

The full mmengine log of a run goes to its work directory (mmengine's own
``<timestamp>/<timestamp>.log`` and ``train_console.log`` with everything the
subprocess printed); the console gets one line per logged iteration window.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

__all__ = ['DEMO_SCALE', 'ensure_dataset', 'schedule_options', 'train_run',
           'train_runs']

DEMO_SCALE = 0.3333  # 1242x375 -> 414x125, the demo configs' 416x128 input
MANIFEST = 'ddml_demo_manifest.json'


def _manifest(num_train: int, num_val: int, seed: int, scale: float,
              layout) -> Dict:
    from ddml.data_tools.kitti_converter import INFO_VERSION
    return dict(num_train=int(num_train), num_val=int(num_val),
                seed=int(seed), scale=float(scale), layout=layout.as_dict(),
                info_version=INFO_VERSION)


def ensure_dataset(root: str,
                   num_train: int,
                   num_val: int,
                   seed: int = 0,
                   scale: float = DEMO_SCALE,
                   progress: bool = True,
                   log: Callable[[str], None] = print,
                   layout=None) -> bool:
    """Render the synthetic dataset unless ``root`` already holds it.

    ``root/ddml_demo_manifest.json`` records the sizes, seed, scale, scene
    layout and info version (``kitti_converter.INFO_VERSION``) of the last
    rendering; the data is re-rendered when it is missing, when any of them
    differ, or when an info file is missing.
    (Rendering is deterministic, so equal manifests mean equal files.)

    Args:
        root (str): Dataset root.
        num_train (int): Training frames.
        num_val (int): Validation frames.
        seed (int): Rendering seed. Defaults to 0.
        scale (float): Image scale. Defaults to :data:`DEMO_SCALE`.
        progress (bool): Progress bar. Defaults to True.
        log (callable): Where the messages go.
        layout (SceneLayout, optional): What the frames hold. Defaults to
            the demo's, :data:`ddml.data_tools.synthetic_kitti.DEMO_LAYOUT`.

    Returns:
        bool: True if the data was (re)rendered.
    """
    from ddml.data_tools.synthetic_kitti import (DEMO_LAYOUT,
                                                 make_demo_dataset)
    layout = DEMO_LAYOUT if layout is None else layout
    want = _manifest(num_train, num_val, seed, scale, layout)
    path = osp.join(root, MANIFEST)
    have = None
    if osp.isfile(path):
        try:
            with open(path) as f:
                have = json.load(f)
        except (OSError, ValueError):
            have = None
    infos = [osp.join(root, f'kitti_infos_{s}.pkl')
             for s in ('train', 'val', 'trainval')]
    if have == want and all(osp.isfile(p) for p in infos):
        log(f'data: {root} already holds {num_train} train / {num_val} val '
            f'frames (seed {seed}, scale {scale:g}); not re-rendering')
        return False
    reason = 'not there' if have is None else f'manifest {have} differs'
    log(f'data: rendering {num_train} + {num_val} frames into {root} '
        f'({reason})')
    if osp.isfile(path):
        os.remove(path)  # an interrupted rendering must not look complete
    make_demo_dataset(root, num_train, num_val, seed=seed, scale=scale,
                      progress=progress, layout=layout)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(want, f)
    os.replace(tmp, path)
    return True


def schedule_options(iters: int,
                     seed: int = 0,
                     data_root: Optional[str] = None,
                     log_interval: Optional[int] = None,
                     extra: Optional[List[str]] = None) -> List[str]:
    """``--cfg-options`` of the demo schedule with ``iters`` iterations.

    Scales the demo configs' schedule (linear warm-up, x0.1 at 80 %),
    saves one checkpoint at the end, and disables the in-training
    validation (evaluation is done afterwards, once).
    """
    iters = int(iters)
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    warmup = max(1, min(50, iters // 5))
    if log_interval is None:
        log_interval = max(1, min(20, iters // 10))
    opts = [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        f'param_scheduler.0.end={warmup}', f'param_scheduler.1.end={iters}',
        f'param_scheduler.1.milestones=[{max(1, int(iters * 0.8))}]',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={log_interval}',
        f'randomness.seed={int(seed)}'
    ]
    if data_root is not None:
        root = data_root.rstrip('/') + '/'
        opts.append(f'train_dataloader.dataset.data_root={root}')
    return opts + list(extra or [])


_ITER_RE = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')


def _condense(line: str, name: str) -> Optional[str]:
    m = _ITER_RE.search(line)
    if m is None:
        return None
    fields = dict(re.findall(r'(\w+): ([-0-9.e:+]+)', line[m.end():]))
    parts = [f'{name:>12s}  iter {int(m.group(1)):>5d}/{m.group(2)}']
    if 'eta' in fields:
        parts.append(f'eta {fields["eta"]}')
    if 'time' in fields:
        parts.append(f'{float(fields["time"]):.2f} s/it')
    if 'loss' in fields:
        parts.append(f'loss {float(fields["loss"]):.3f}')
    aux = [f'{k[5:]} {float(v):.3f}' for k, v in fields.items()
           if k.startswith('loss_')]
    if aux:
        parts.append('(' + ', '.join(aux) + ')')
    return '  '.join(parts)


def train_run(config: str,
              work_dir: str,
              cfg_options: List[str],
              name: str = 'train',
              python: str = sys.executable,
              log: Callable[[str], None] = print,
              threads: Optional[int] = None) -> Dict:
    """Train with ddml's entry point (``python -m ddml.engine.train``) in a
    subprocess.

    Args:
        config (str): Config path (relative paths from the current
            directory).
        work_dir (str): Run directory (checkpoint, mmengine logs,
            ``train_console.log``).
        cfg_options (list[str]): ``key=value`` overrides.
        name (str): Label of the progress lines.
        python (str): Interpreter. Defaults to this one.
        log (callable): Where the condensed progress lines go.
        threads (int, optional): ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` of
            the subprocess; None inherits the environment.

    Returns:
        dict: ``checkpoint`` (the last one), ``wall_s``, ``cpu_s`` (user +
        system of the training process and the processes it waited for,
        e.g. its data loader workers), ``console_log``.

    Raises:
        RuntimeError: If training fails (with the end of its output).
    """
    os.makedirs(work_dir, exist_ok=True)
    console = osp.join(work_dir, 'train_console.log')
    cmd = [python, '-m', 'ddml.engine.train', config, '--work-dir',
           work_dir, '--cfg-options'] + list(cfg_options)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if threads is not None and threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    tail: List[str] = []
    with open(console, 'w') as out:
        out.write(' '.join(cmd) + '\n')
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            out.write(line)
            tail = (tail + [line])[-40:]
            short = _condense(line, name)
            if short is not None:
                log(short)
        # wait4: this child's own CPU time, also when runs go in parallel
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f'training {name} failed (exit '
                           f'{proc.returncode}); full output in {console}; '
                           'last lines:\n' + ''.join(tail))
    ckpt = None
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            ckpt = f.read().strip()
    return dict(checkpoint=ckpt, wall_s=wall, cpu_s=cpu, console_log=console)


def train_runs(jobs: Sequence[Dict],
               parallel: int = 1,
               log: Callable[[str], None] = print) -> List[Dict]:
    """Several :func:`train_run` calls, ``parallel`` at a time.

    Args:
        jobs (Sequence[dict]): Keyword arguments of :func:`train_run` each
            (``config``, ``work_dir``, ``cfg_options``, ``name``, ...).
        parallel (int): Runs at the same time (e.g. 2 on 2 cores, one
            thread each). Defaults to 1.
        log (callable): Progress lines of all runs (thread-safe).

    Returns:
        list[dict]: :func:`train_run`'s results, in the order of ``jobs``.

    Raises:
        RuntimeError: The first failure, after the other runs finished.
    """
    from concurrent.futures import ThreadPoolExecutor
    lock = threading.Lock()

    def locked_log(msg: str) -> None:
        with lock:
            log(msg)

    def one(kwargs: Dict) -> Dict:
        return train_run(**dict(kwargs, log=locked_log))

    with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        futures = [pool.submit(one, job) for job in jobs]
        errors = [f.exception() for f in futures]
    for err in errors:
        if err is not None:
            raise err
    return [f.result() for f in futures]
