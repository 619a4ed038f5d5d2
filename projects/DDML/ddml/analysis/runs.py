"""Running the demo's steps: synthetic data with a manifest, and training
through ddml's entry point (``python -m ddml.engine.train``) in
subprocesses, one or several at a time, with concise progress lines.

The full mmengine log of a run goes to its work directory (mmengine's own
``<timestamp>/<timestamp>.log`` and ``train_console.log`` with everything the
subprocess printed); the console gets one line per logged iteration window.
"""
import dataclasses
import functools
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ['DEMO_SCALE', 'DemoDataset', 'DEMO_DATASETS', 'demo_dataset',
           'read_manifest', 'code_version', 'check_data_root',
           'ensure_dataset', 'parse_cfg_options', 'schedule_options',
           'train_run', 'RunsFailed', 'run_parallel', 'train_runs']

DEMO_SCALE = 0.3333  # 1242x375 -> 414x125, the demo configs' 416x128 input
MANIFEST = 'ddml_demo_manifest.json'


@dataclasses.dataclass(frozen=True)
class DemoDataset:
    """One synthetic dataset format of the demo and the efficacy benchmark:
    how it is rendered and where its files and camera-frame labels are.

    Attributes:
        name (str): ``kitti`` or ``waymo`` (``--dataset`` of the tools).
        title (str): Its name in text.
        info_prefix (str): Info files are
            ``<info_prefix>_infos_<split>.pkl``.
        cam_key (str): The camera of the infos' ``images``.
        gt_key (str): Where an info holds the camera-frame boxes:
            ``instances`` (KITTI's are camera boxes, DontCare label -1) or
            ``cam_instances`` (``cam_instances[cam_key]``; Waymo's
            ``instances`` are LiDAR boxes).
        scale (float): Rendering scale of the demo's frames; the demo
            configs' input size is the rendered size (rounded to a multiple
            of 32).
        layout_changes (tuple): ``(field, value)`` pairs that turn the
            KITTI demo's scenes
            (:data:`ddml.data_tools.synthetic_kitti.DEMO_LAYOUT`) into this
            dataset's.
        default_root (str): Where the tools render it by default.
    """
    name: str
    title: str
    info_prefix: str
    cam_key: str
    gt_key: str
    scale: float
    layout_changes: Tuple[Tuple[str, Any], ...]
    default_root: str

    def layout(self):
        """The :class:`~ddml.data_tools.synthetic_kitti.SceneLayout` the
        demo renders."""
        from ddml.data_tools.synthetic_kitti import DEMO_LAYOUT
        return dataclasses.replace(DEMO_LAYOUT, **dict(self.layout_changes))

    def info_file(self, root: str, split: str) -> str:
        """The info file of ``split`` (``train``, ``val``, ``test``, ...)
        under ``root``."""
        return osp.join(root, f'{self.info_prefix}_infos_{split}.pkl')

    def image_dir(self, split: str) -> str:
        """Folder (relative to the root) of the images of ``split``:
        ``training/`` for train and val, ``testing/`` for the held-out
        split, as each format's converter lays them out."""
        if self.name == 'waymo':
            from ddml.data_tools.synthetic_waymo import waymo_data_prefix
            return waymo_data_prefix(split)[self.cam_key]
        from ddml.data_tools.kitti_converter import split_image_prefix
        return split_image_prefix(split)

    def camera_instances(self, info: dict) -> List[dict]:
        """The labelled objects of one info as camera-frame boxes
        (``bbox_3d = [x, y, z, l, h, w, ry]``, bottom centre), DontCare
        left out."""
        if self.gt_key == 'cam_instances':
            insts = info.get('cam_instances', {}).get(self.cam_key, [])
        else:
            insts = info.get(self.gt_key, [])
        return [i for i in insts if i.get('bbox_label_3d', -1) >= 0]

    def frame_title(self, info: dict) -> str:
        """What names a frame: the image file (KITTI) or Waymo's frame key
        ``context_name/timestamp``."""
        if self.name == 'waymo':
            return f'{info["context_name"]}/{info["timestamp"]}'
        return osp.basename(info['images'][self.cam_key]['img_path'])

    def render(self, root: str, num_train: int, num_val: int, seed: int,
               scale: float, progress: bool, layout, num_test: int) -> None:
        """Render the dataset into ``root`` (the format's renderer)."""
        if self.name == 'waymo':
            from ddml.data_tools.synthetic_waymo import make_waymo_dataset
            make_waymo_dataset(root, num_train, num_val, seed=seed,
                               scale=scale, progress=progress, layout=layout,
                               num_test=num_test)
            return
        from ddml.data_tools.synthetic_kitti import make_demo_dataset
        make_demo_dataset(root, num_train, num_val, seed=seed, scale=scale,
                          progress=progress, layout=layout,
                          num_test=num_test)


#: The demo's datasets by ``--dataset`` name. Waymo's: the front camera at
#: scale 0.15 (288x192, the Waymo demo configs' input: the KITTI demo's cost
#: per iteration; see their header) and the KITTI demo's scenes (Cars,
#: 3-10 a frame, mostly along the road, no skyline) out to 50 m, so that
#: Waymo's 0-30 m and 30-50 m range bins both hold objects.
DEMO_DATASETS: Dict[str, DemoDataset] = {
    'kitti': DemoDataset(
        name='kitti', title='KITTI', info_prefix='kitti', cam_key='CAM2',
        gt_key='instances', scale=DEMO_SCALE, layout_changes=(),
        default_root='data/demo_kitti'),
    'waymo': DemoDataset(
        name='waymo', title='Waymo', info_prefix='waymo',
        cam_key='CAM_FRONT', gt_key='cam_instances', scale=0.15,
        layout_changes=(('depth_range', (4.0, 50.0)), ),
        default_root='data/demo_waymo'),
}


def demo_dataset(name: str) -> DemoDataset:
    """The :class:`DemoDataset` called ``name``.

    Raises:
        ValueError: Naming the choices (``--dataset``).
    """
    if name not in DEMO_DATASETS:
        raise ValueError(f'unknown dataset {name!r} (--dataset); choose '
                         f'from {sorted(DEMO_DATASETS)}')
    return DEMO_DATASETS[name]


def _manifest(num_train: int, num_val: int, num_test: int, seed: int,
              scale: float, layout, dataset: str = 'kitti') -> Dict:
    if dataset == 'waymo':
        from ddml.data_tools.synthetic_waymo import WAYMO_METAINFO
        return dict(format='waymo', num_train=int(num_train),
                    num_val=int(num_val), num_test=int(num_test),
                    seed=int(seed), scale=float(scale),
                    layout=layout.as_dict(),
                    info_version=WAYMO_METAINFO['info_version'])
    from ddml.data_tools.kitti_converter import INFO_VERSION
    return dict(num_train=int(num_train), num_val=int(num_val),
                num_test=int(num_test), seed=int(seed), scale=float(scale),
                layout=layout.as_dict(), info_version=INFO_VERSION)


def read_manifest(root: str) -> Optional[Dict]:
    """The manifest of the synthetic data in ``root`` (what
    :func:`ensure_dataset` rendered there), or None (other data)."""
    path = osp.join(root, MANIFEST)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def code_version() -> str:
    """The git commit of the ddml code that runs (the checkout holding
    the imported package), ``+dirty`` when its package, configs or tools
    differ from that commit; ``unknown`` outside a git checkout."""
    import ddml
    where = osp.dirname(osp.abspath(ddml.__file__))

    def git(*args: str) -> str:
        return subprocess.run(['git', '-C', where] + list(args),
                              capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git('rev-parse', 'HEAD')
        top = git('rev-parse', '--show-toplevel')
        dirty = git('status', '--porcelain', '--untracked-files=no', '--',
                    osp.join(top, 'projects'), osp.join(top, 'configs'),
                    osp.join(top, 'tools'))
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return commit + ('+dirty' if dirty else '')


def _check_format(root: str, dataset: str, have: Optional[Dict]) -> None:
    """Refuse to render ``dataset`` over our rendering of the other
    format (manifest ``have``)."""
    from ..engine.cli import BadValueError
    if have is not None and have.get('format', 'kitti') != dataset:
        raise BadValueError(
            f'{root} holds synthetic {have.get("format", "kitti")} data; '
            f'render the {dataset} data elsewhere (--data-root, default '
            f'{demo_dataset(dataset).default_root})')


def check_data_root(root: str,
                    dataset: str = 'kitti',
                    skip_data: bool = False,
                    splits: Sequence[str] = ('train', 'val'),
                    option: str = '--data-root') -> None:
    """Check, before anything is rendered or trained, that ``root`` can
    be the data of the demo's tools (``tools/run_demo.py``,
    ``benchmark_efficacy.py``, ``diagnose_aux_losses.py``).

    With ``skip_data`` (used as it is) it must hold the info files of
    ``splits``; else it is where :func:`ensure_dataset` renders: not a
    file, and not our rendering of the other format.

    Raises:
        ddml.engine.cli.UsageError: Naming the folder or info file and the
            fix, in one line.
    """
    from ..engine.cli import MissingPathError, check_dir, check_out_dir
    spec = demo_dataset(dataset)
    if not skip_data:
        check_out_dir(root, option)
        _check_format(root, dataset, read_manifest(root))
        return
    check_dir(root, option, 'give the folder that holds the data and its '
              'infos, or leave out --skip-data to render the synthetic '
              'data there')
    for split in splits:
        info = spec.info_file(root, split)
        if not osp.isfile(info):
            raise MissingPathError(
                f'{option} {root}: no {osp.basename(info)} there, which '
                f'--skip-data needs; leave out --skip-data to render the '
                f'synthetic {spec.title} data there, or give the root that '
                'holds its infos')


def ensure_dataset(root: str,
                   num_train: int,
                   num_val: int,
                   seed: int = 0,
                   scale: Optional[float] = None,
                   progress: bool = True,
                   log: Callable[[str], None] = print,
                   layout=None,
                   num_test: int = 0,
                   dataset: str = 'kitti') -> bool:
    """Render the synthetic dataset unless ``root`` already holds it.

    ``root/ddml_demo_manifest.json`` records the sizes, seed, scale, scene
    layout and info version (KITTI: ``kitti_converter.INFO_VERSION``) of the
    last rendering (and ``format='waymo'`` for Waymo); the data is
    re-rendered when it is missing, when any of them differ, or when an
    info file is missing.
    (Rendering is deterministic, so equal manifests mean equal files.)
    A ``testing/`` folder of an earlier rendering of ours (the manifest
    was there) is removed before re-rendering.

    Args:
        root (str): Dataset root.
        num_train (int): Training frames.
        num_val (int): Validation frames.
        seed (int): Rendering seed. Defaults to 0.
        scale (float, optional): Image scale. Defaults to the dataset's
            (:data:`DEMO_SCALE` for KITTI).
        progress (bool): Progress bar. Defaults to True.
        log (callable): Where the messages go.
        layout (SceneLayout, optional): What the frames hold. Defaults to
            the dataset's (:meth:`DemoDataset.layout`; KITTI's is
            :data:`ddml.data_tools.synthetic_kitti.DEMO_LAYOUT`).
        num_test (int): Frames of the labelled held-out ``test`` split
            (``testing/``, its own seed stream). Defaults to 0.
        dataset (str): A key of :data:`DEMO_DATASETS`. Defaults to
            'kitti'.

    Returns:
        bool: True if the data was (re)rendered.

    Raises:
        ValueError: When ``root`` holds our rendering of the other format.
    """
    spec = demo_dataset(dataset)
    layout = spec.layout() if layout is None else layout
    scale = spec.scale if scale is None else scale
    want = _manifest(num_train, num_val, num_test, seed, scale, layout,
                     dataset)
    path = osp.join(root, MANIFEST)
    have = read_manifest(root)
    _check_format(root, dataset, have)
    splits = ('train', 'val', 'trainval') + (('test', ) if num_test else ())
    infos = [spec.info_file(root, s) for s in splits]
    sizes = f'{num_train} train / {num_val} val / {num_test} test'
    if have == want and all(osp.isfile(p) for p in infos):
        log(f'data: {root} already holds {sizes} frames (seed {seed}, '
            f'scale {scale:g}); not re-rendering')
        return False
    reason = 'not there' if have is None else f'manifest {have} differs'
    log(f'data: rendering {sizes} frames into {root} ({reason})')
    if osp.isfile(path):
        os.remove(path)  # an interrupted rendering must not look complete
        if osp.isdir(osp.join(root, 'testing')):
            shutil.rmtree(osp.join(root, 'testing'))  # ours: re-rendered
    spec.render(root, num_train, num_val, seed=seed, scale=scale,
                progress=progress, layout=layout, num_test=num_test)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(want, f)
    os.replace(tmp, path)
    return True


def parse_cfg_options(options: Sequence[str]) -> Dict:
    """``key=value`` strings parsed as ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    out = {}
    for opt in options:
        key, value = opt.split('=', 1)
        out[key] = DictAction._parse_iterable(value)
    return out


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


class RunsFailed(RuntimeError):
    """Some jobs of :func:`run_parallel` failed (raised after all ended).

    Attributes:
        failures (dict[str, BaseException]): Job name -> its error.
        results (list): The results of all jobs, in order, None where a
            job failed.
    """

    def __init__(self, failures: Dict[str, BaseException],
                 results: List[Any]):
        self.failures, self.results = dict(failures), list(results)
        lines = '\n'.join(f'  {name}: {str(err).splitlines()[0]}'
                          for name, err in self.failures.items())
        super().__init__(f'{len(self.failures)} of {len(self.results)} runs '
                         f'failed:\n{lines}')


def run_parallel(jobs: Sequence[Tuple[str, Callable[..., Any]]],
                 parallel: int = 1,
                 log: Callable[[str], None] = print,
                 on_done: Optional[Callable[[str, Any], None]] = None
                 ) -> List[Any]:
    """Run jobs ``parallel`` at a time, with one failure policy.

    The one runner of parallel trainings (the demo's side-by-side
    trainings, the efficacy benchmark's runs). Its failure policy: a
    failing job is logged at once (``FAILED <name>: <first line>``), the
    other jobs run to their end, and then :class:`RunsFailed` names every
    failure (with the results of the others).

    Args:
        jobs (Sequence[tuple[str, callable]]): ``(name, fn)``; ``fn(log)``
            does the work, writing its progress lines through ``log``
            (thread-safe).
        parallel (int): Jobs at the same time (e.g. 2 on 2 cores, one
            thread each). Defaults to 1.
        log (callable): Progress lines of all jobs.
        on_done (callable, optional): ``on_done(name, result)`` after each
            successful job, one call at a time (e.g. to rewrite a report).

    Returns:
        list: The jobs' results, in the order of ``jobs``.

    Raises:
        RunsFailed: After all jobs ended, if any failed.
    """
    from concurrent.futures import ThreadPoolExecutor
    lock = threading.Lock()
    results: List[Any] = [None] * len(jobs)
    failures: Dict[str, BaseException] = {}

    def locked_log(msg: str) -> None:
        with lock:
            log(msg)

    def one(k: int) -> None:
        name, fn = jobs[k]
        try:
            result = fn(locked_log)
        except Exception as err:  # noqa: BLE001 (policy: others go on)
            with lock:
                failures[name] = err
                first = str(err).splitlines()[0] if str(err) else repr(err)
                log(f'FAILED {name}: {first}')
            return
        with lock:
            results[k] = result
            if on_done is not None:
                on_done(name, result)

    with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        list(pool.map(one, range(len(jobs))))
    if failures:
        raise RunsFailed({n: failures[n] for n, _ in jobs if n in failures},
                         results)
    return results


def train_runs(jobs: Sequence[Dict],
               parallel: int = 1,
               log: Callable[[str], None] = print) -> List[Dict]:
    """Several :func:`train_run` calls through :func:`run_parallel`.

    Args:
        jobs (Sequence[dict]): Keyword arguments of :func:`train_run` each
            (``config``, ``work_dir``, ``cfg_options``, ``name``, ...).
        parallel (int): Runs at the same time. Defaults to 1.
        log (callable): Progress lines of all runs (thread-safe).

    Returns:
        list[dict]: :func:`train_run`'s results, in the order of ``jobs``.

    Raises:
        RunsFailed: After every run ended, if any failed.
    """
    return run_parallel(
        [(job.get('name', f'train{k}'),
          functools.partial(_train_with_log, job))
         for k, job in enumerate(jobs)],
        parallel=parallel, log=log)


def _train_with_log(job: Dict, log: Callable[[str], None]) -> Dict:
    return train_run(**dict(job, log=log))
