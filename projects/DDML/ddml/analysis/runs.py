"""Running the demo's steps: synthetic data with a manifest, and training
through ``tools/train.py`` in a subprocess with concise progress lines.

The full mmengine log of a run goes to its work directory (mmengine's own
``<timestamp>/<timestamp>.log`` and ``train_console.log`` with everything the
subprocess printed); the console gets one line per logged iteration window.
"""
import json
import os
import os.path as osp
import re
import resource
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

__all__ = ['REPO_ROOT', 'DEMO_SCALE', 'ensure_dataset', 'schedule_options',
           'train_run', 'children_cpu_seconds']

REPO_ROOT = osp.abspath(
    osp.join(osp.dirname(__file__), '..', '..', '..', '..'))
DEMO_SCALE = 0.3333  # 1242x375 -> 414x125, the demo configs' 416x128 input
MANIFEST = 'ddml_demo_manifest.json'


def _manifest(num_train: int, num_val: int, seed: int, scale: float) -> Dict:
    return dict(num_train=int(num_train), num_val=int(num_val),
                seed=int(seed), scale=float(scale))


def ensure_dataset(root: str,
                   num_train: int,
                   num_val: int,
                   seed: int = 0,
                   scale: float = DEMO_SCALE,
                   progress: bool = True,
                   log: Callable[[str], None] = print) -> bool:
    """Render the synthetic dataset unless ``root`` already holds it.

    ``root/ddml_demo_manifest.json`` records the sizes, seed and scale of
    the last rendering; the data is re-rendered when it is missing, when
    any of them differ, or when an info file is missing. (Rendering is
    deterministic, so equal manifests mean equal files.)

    Returns:
        bool: True if the data was (re)rendered.
    """
    from ddml.data_tools.synthetic_kitti import make_demo_dataset
    want = _manifest(num_train, num_val, seed, scale)
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
                      progress=progress)
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


def children_cpu_seconds() -> float:
    """User + system CPU seconds of all waited-for child processes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


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
              log: Callable[[str], None] = print) -> Dict:
    """Train with ``tools/train.py`` in a subprocess.

    Args:
        config (str): Config path.
        work_dir (str): Run directory (checkpoint, mmengine logs,
            ``train_console.log``).
        cfg_options (list[str]): ``key=value`` overrides.
        name (str): Label of the progress lines.
        python (str): Interpreter. Defaults to this one.
        log (callable): Where the condensed progress lines go.

    Returns:
        dict: ``checkpoint`` (the last one), ``wall_s``, ``cpu_s`` (user +
        system of the process tree), ``console_log``.

    Raises:
        RuntimeError: If training fails (with the end of its output).
    """
    os.makedirs(work_dir, exist_ok=True)
    console = osp.join(work_dir, 'train_console.log')
    cmd = [python, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options'] + list(cfg_options)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    cpu0, start = children_cpu_seconds(), time.perf_counter()
    tail: List[str] = []
    with open(console, 'w') as out:
        out.write(' '.join(cmd) + '\n')
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            out.write(line)
            tail = (tail + [line])[-40:]
            short = _condense(line, name)
            if short is not None:
                log(short)
        rc = proc.wait()
    wall = time.perf_counter() - start
    cpu = children_cpu_seconds() - cpu0
    if rc != 0:
        raise RuntimeError(f'training {name} failed (exit {rc}); full output '
                           f'in {console}; last lines:\n' + ''.join(tail))
    ckpt = None
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            ckpt = f.read().strip()
    return dict(checkpoint=ckpt, wall_s=wall, cpu_s=cpu, console_log=console)
