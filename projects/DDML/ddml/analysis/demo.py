"""The demo: synthetic KITTI- or Waymo-format data, a baseline and the same
detector with the method, trained side by side, evaluated and drawn.

:func:`run_demo` is what ``tools/run_demo.py`` (``make demo``) calls; the
config paths and the dataset (``kitti`` or ``waymo``,
:data:`ddml.analysis.runs.DEMO_DATASETS`) are its arguments. Its steps:

1. render the synthetic data (:func:`ddml.analysis.runs.ensure_dataset`;
   skipped when the data root already holds it);
2. train every model with the same seed and schedule, in parallel
   subprocesses (one thread each) when the machine has the cores;
3. evaluate each on the val (or held-out test) split with the data's
   benchmark: mmdet3d's ``KittiMetric`` (3D, BEV, 2D AP40) or ddml's
   ``WaymoMono3DMetric`` (AP/APH LEVEL_1/2 by range, LET-3D-AP/APL/APH);
   and for both ddml's ``CentreDistanceMetric`` (BEV centre-distance AP,
   depth error by range), depth error of 2D-matched detections, object
   descriptor statistics, inference time;
4. write the table (``demo_table.md``), ``demo_results.json`` and the
   figures: training curves, a gallery of evaluated frames (projected 3D
   boxes and bird's-eye views of ground truth and every model), depth
   error against distance, and per model descriptor distance against
   depth distance and a PCA of the descriptors.
"""
import json
import math
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ['DEMO_TABLE_ROWS', 'WAYMO_DEMO_TABLE_ROWS', 'TABLE_ROWS',
           'TABLE_NOTES', 'demo_table', 'demo_figures', 'demo_checkpoint',
           'check_demo_args', 'run_demo']

#: Rows of both tables: centre distance, depth error, cost, descriptors.
_SHARED_ROWS = [
    ('Car centre-dist AP 0.5/1/2/4 m',
     ['cd_Car_AP_0.5m', 'cd_Car_AP_1.0m', 'cd_Car_AP_2.0m',
      'cd_Car_AP_4.0m'], 3),
    ('Car centre-dist mAP', ['cd_Car_mAP'], 3),
    ('depth error 0-20/20-40/40+ m',
     ['cd_depth_abs_err_0-20m', 'cd_depth_abs_err_20-40m',
      'cd_depth_abs_err_40m+'], 2),
    ('  matched (centre < 2 m)',
     ['cd_depth_count_0-20m', 'cd_depth_count_20-40m',
      'cd_depth_count_40m+'], 0),
    ('depth MAE, 2D IoU >= 0.5 (m)', ['depth_mae'], 3),
    ('  matched detections', ['depth_matched'], 0),
    ('train s/iter (wall)', ['train_s_per_iter'], 2),
    ('train CPU s/iter', ['train_cpu_s_per_iter'], 2),
    ('inference ms/image (wall)', ['infer_ms'], 1),
    ('descriptor Spearman', ['spearman'], 3),
    ('pairs inside bounds (%)', ['frac_inside'], 1),
]

#: (title, row keys, digits) of the KITTI demo table, in order.
DEMO_TABLE_ROWS = [
    ('Car AP3D  E/M/H  IoU 0.7', ['AP3D_easy', 'AP3D_mod', 'AP3D_hard'], 2),
    ('Car AP3D  E/M/H  IoU 0.5',
     ['AP3D_easy_loose', 'AP3D_mod_loose', 'AP3D_hard_loose'], 2),
    ('Car APBEV E/M/H  IoU 0.7', ['APBEV_easy', 'APBEV_mod', 'APBEV_hard'],
     2),
    ('Car APBEV E/M/H  IoU 0.5',
     ['APBEV_easy_loose', 'APBEV_mod_loose', 'APBEV_hard_loose'], 2),
    ('Car AP2D  E/M/H  IoU 0.7', ['AP2D_easy', 'AP2D_mod', 'AP2D_hard'], 2),
    ('Car AP2D  E/M/H, own 2D boxes',
     ['AP2Dreg_easy', 'AP2Dreg_mod', 'AP2Dreg_hard'], 2),
] + _SHARED_ROWS

#: WaymoMono3DMetric's range bins (its ``Range_<bin>`` keys).
_WAYMO_RANGES = ('0-30m', '30-50m', '50m-inf')


def _waymo(level: int, name: str, rng: Optional[str] = None,
           cls: str = 'Vehicle') -> str:
    """A row key: the ``WaymoMono3DMetric`` figure as it reports it."""
    where = f'Range_{rng}/' if rng else ''
    return f'Waymo/{cls}/LEVEL_{level}/{where}{name}'


#: (title, row keys, digits) of the Waymo demo table (Vehicle, the demo's
#: one class), in order: WaymoMono3DMetric's figures (0-1) in place of
#: KITTI's AP40, then the rows both tables share.
WAYMO_DEMO_TABLE_ROWS = [
    ('Vehicle LET-3D-AP/APL/APH  L2',
     [_waymo(2, 'LET-AP'), _waymo(2, 'LET-APL'), _waymo(2, 'LET-APH')], 3),
    ('Vehicle LET-3D-AP  0-30/30-50/50+ m',
     [_waymo(2, 'LET-AP', r) for r in _WAYMO_RANGES], 3),
    ('Vehicle 3D AP/APH  L1  IoU 0.7',
     [_waymo(1, 'AP'), _waymo(1, 'APH')], 3),
    ('Vehicle 3D AP/APH  L2  IoU 0.7',
     [_waymo(2, 'AP'), _waymo(2, 'APH')], 3),
    ('Vehicle 3D AP L1  0-30/30-50/50+ m',
     [_waymo(1, 'AP', r) for r in _WAYMO_RANGES], 3),
] + _SHARED_ROWS

#: The table of each dataset of :data:`ddml.analysis.runs.DEMO_DATASETS`.
TABLE_ROWS = dict(kitti=DEMO_TABLE_ROWS, waymo=WAYMO_DEMO_TABLE_ROWS)

#: What the figures of each table are, and for Waymo which are left out.
TABLE_NOTES = dict(
    kitti=('AP: KITTI AP40 of Car in %, strict IoU 0.7 and loose IoU 0.5 '
           '(E/M/H = easy/moderate/hard); centre-dist: nuScenes-style AP '
           'matching by BEV centre distance (0-1), and |z_pred - z_gt| of '
           'those matched within 2 m by ground-truth range; depth MAE: '
           'detections matched by 2D IoU >= 0.5 (all classes); Spearman / '
           'in-bounds: object descriptor distance vs depth distance over val '
           'object pairs.'),
    waymo=('Waymo figures (0-1) of WaymoMono3DMetric (no TensorFlow) on the '
           'front camera: 3D AP / APH (heading-weighted) at IoU 0.7, LEVEL_1 '
           '/ LEVEL_2 (at most 5 LiDAR points on the box) and by distance to '
           'the vehicle; LET-3D-AP / APL / APH: the camera-only challenge\'s '
           'longitudinal-error-tolerant matching (IoU 0.5 after sliding the '
           'prediction along the line of sight by up to 10 % of its range, '
           '>= 0.5 m), LEVEL_2. centre-dist, depth error, depth MAE, '
           'Spearman / in-bounds: as for KITTI, on the front camera\'s labels '
           '(cam_instances). Left out on Waymo: KITTI AP40 (3D / BEV / 2D, '
           'easy / moderate / hard are KITTI\'s difficulty levels; '
           'KittiMetric) and the 2D AP of the regressed 2D boxes.'))

_PERCENT_KEYS = ('frac_inside', )


def _fmt(x, digits: int) -> str:
    from .demo_report import fmt
    return fmt(x, digits)


def _diff(b, a, digits: int) -> str:
    try:
        d = float(b) - float(a)
    except (TypeError, ValueError):
        return '-'
    if math.isnan(d):
        return '-'
    return f'{d:+.{digits}f}'


def demo_table(rows: Sequence[Mapping], markdown: bool = False,
               dataset: str = 'kitti') -> str:
    """Metrics as rows, models as columns, plus the difference of the
    second model to the first when there are two.

    Args:
        rows (Sequence[Mapping]): One dict per model (``name`` and the keys
            of the dataset's rows; missing keys print as ``-``).
        markdown (bool): GitHub markdown instead of plain text.
        dataset (str): Whose rows (:data:`TABLE_ROWS`): ``kitti``
            (:data:`DEMO_TABLE_ROWS`) or ``waymo``
            (:data:`WAYMO_DEMO_TABLE_ROWS`). Defaults to 'kitti'.

    Returns:
        str: The table.
    """
    from .demo_report import format_table
    if dataset not in TABLE_ROWS:
        raise ValueError(f'no demo table for dataset {dataset!r}; choose '
                         f'from {sorted(TABLE_ROWS)}')
    lines = []
    for title, keys, digits in TABLE_ROWS[dataset]:
        cells = [title]
        values = []
        for r in rows:
            v = [r.get(k, float('nan')) for k in keys]
            v = [100 * x if k in _PERCENT_KEYS and x is not None else x
                 for k, x in zip(keys, v)]
            values.append(v)
            cells.append(' / '.join(_fmt(x, digits) for x in v))
        if len(rows) == 2:
            cells.append(' / '.join(
                _diff(b, a, digits)
                for a, b in zip(values[0], values[1], strict=True)))
        lines.append(cells)
    header = ['metric'] + [r['name'] for r in rows] + (
        ['difference'] if len(rows) == 2 else [])
    return format_table(header, lines, markdown=markdown)


def _pick_frames(results: Sequence[Mapping], infos: Sequence[Mapping],
                 num: int, dataset: str = 'kitti') -> List[int]:
    """Frames for the gallery: those with the most labelled objects within
    30 m (ties: the lowest index), spread over the split."""
    from .runs import demo_dataset
    spec = demo_dataset(dataset)
    counts = []
    for r in results:
        info = infos[r['sample_idx']]
        n = sum(1 for inst in spec.camera_instances(info)
                if inst['bbox_3d'][2] < 30.0)
        counts.append(n)
    order = np.argsort(-np.asarray(counts), kind='stable')
    return sorted(int(i) for i in order[:num])


def demo_figures(rows: Sequence[Mapping],
                 ann_file: str,
                 data_root: str,
                 fig_dir: str,
                 num_frames: int = 3,
                 score_thr: float = 0.0,
                 split: str = 'val',
                 dataset: str = 'kitti') -> List[str]:
    """The gallery of evaluated frames and depth error against distance.

    Args:
        rows (Sequence[Mapping]): Rows of
            :func:`ddml.analysis.model_eval.evaluate_run` (with
            ``_results`` and ``_matches``), all on the same split.
        ann_file (str): The info file of that split.
        data_root (str): Dataset root (images).
        fig_dir (str): Output folder.
        num_frames (int): Frames in the gallery. Defaults to 3.
        score_thr (float): Lowest score drawn. Defaults to 0 (what the
            detector returns after its own test-time threshold).
        split (str): The info split (``val`` or the held-out ``test``).
            Defaults to 'val'.
        dataset (str): The data's format (``kitti`` or ``waymo``): its
            camera, image folders and labels
            (:func:`ddml.analysis.detection_figures.frame_from_info`).
            Defaults to 'kitti'.

    Returns:
        list[str]: The PNG paths.
    """
    from mmengine.fileio import load

    from .detection_figures import (detection_gallery, frame_from_info,
                                    plot_depth_error_vs_distance)
    infos = load(ann_file)['data_list']
    names = [r['name'] for r in rows]
    paths = []
    results = {r['name']: {res['sample_idx']: res for res in r['_results']}
               for r in rows}
    picked = _pick_frames(rows[0]['_results'], infos, num_frames, dataset)
    frames = []
    for i in picked:
        idx = rows[0]['_results'][i]['sample_idx']
        frame = frame_from_info(infos[idx], data_root, split, dataset)
        frame['preds'] = {}
        for name in names:
            pred = results[name][idx]['pred_instances_3d']
            frame['preds'][name] = (pred['bboxes_3d'],
                                    np.asarray(pred['scores_3d']))
        frames.append(frame)
    if frames:
        paths.append(detection_gallery(
            frames, names, osp.join(fig_dir, f'{split}_gallery.png'),
            score_thr=score_thr, title=f'{split} frames'))
    matches = {}
    for r in rows:
        pairs = [m for m in r['_matches'] if m['name'] == 'Car']
        matches[r['name']] = (np.array([m['z_gt'] for m in pairs]),
                              np.array([m['z_pred'] for m in pairs]))
    paths.append(plot_depth_error_vs_distance(
        matches, osp.join(fig_dir, 'depth_error_vs_distance.png'),
        title=f'Car detections matched by 2D IoU >= 0.5 ({split})'))
    return paths


def demo_checkpoint(work_dir: str, name: str, iters: int) -> str:
    """The checkpoint the demo's training of model ``name`` leaves (and
    ``skip_train`` reuses)."""
    return osp.join(work_dir, name, f'iter_{iters}.pth')


def check_demo_args(configs: Mapping[str, str],
                    data_root: str,
                    work_dir: str,
                    iters: int,
                    skip_data: bool = False,
                    skip_train: bool = False,
                    num_test: int = 0,
                    eval_split: str = 'val',
                    dataset: str = 'kitti') -> None:
    """Check what :func:`run_demo` is given, before anything is rendered,
    trained or written (the option names are ``tools/run_demo.py``'s).

    Raises:
        ddml.engine.cli.UsageError: Naming the option, file or value and
            the fix, in one line: an unknown ``eval_split``; the held-out
            split without ``num_test``; a ``work_dir`` that is a file; a
            ``data_root`` that cannot be used
            (:func:`ddml.analysis.runs.check_data_root`); with
            ``skip_train``, a model without its checkpoint.
    """
    import glob

    from ..engine.cli import BadValueError, MissingPathError, check_out_dir
    from .runs import check_data_root
    if eval_split not in ('val', 'test'):
        raise BadValueError(f'--eval-split {eval_split}: give val or test')
    if eval_split == 'test' and not num_test and not skip_data:
        raise BadValueError('--eval-split test needs a held-out split: give '
                            '--num-test > 0 (frames rendered into testing/)')
    check_out_dir(work_dir, '--work-dir')
    missing = [name for name in configs if not osp.isfile(
        demo_checkpoint(work_dir, name, iters))] if skip_train else []
    check_data_root(data_root, dataset, skip_data,
                    (eval_split, ) + (('train', ) if missing or not skip_train
                                      else ()))
    if missing:
        ckpt = demo_checkpoint(work_dir, missing[0], iters)
        there = sorted(osp.basename(p) for p in glob.glob(
            osp.join(work_dir, missing[0], 'iter_*.pth')))
        raise MissingPathError(
            f'--skip-train: no checkpoint {ckpt} to reuse (--iters {iters}); '
            'leave out --skip-train to train it'
            + (f', or give the --iters of the one there ({", ".join(there)})'
               if there else ''))


def run_demo(configs: Mapping[str, str],
             data_root: str,
             work_dir: str,
             iters: int,
             num_train: int,
             num_val: int,
             seed: int = 0,
             threads: Optional[int] = None,
             parallel: Optional[int] = None,
             skip_data: bool = False,
             skip_train: bool = False,
             log: Callable[[str], None] = print,
             num_test: int = 0,
             eval_split: str = 'val',
             dataset: str = 'kitti') -> Dict:
    """Render, train, evaluate and draw (see the module docstring).

    Args:
        configs (Mapping[str, str]): Model name -> config path, the
            baseline first.
        data_root (str): Synthetic dataset root.
        work_dir (str): Runs, figures and tables go here.
        iters (int): Training iterations per model.
        num_train (int): Training frames.
        num_val (int): Validation frames.
        seed (int): Seed of the data and of every training. Defaults to 0.
        threads (int, optional): Torch/OpenMP threads per training process
            (and of this process's evaluation). Defaults to one per core
            divided among the parallel runs.
        parallel (int, optional): Trainings at the same time. Defaults to
            ``min(#models, #cores)``.
        skip_data (bool): Use ``data_root`` as it is.
        skip_train (bool): Reuse the checkpoints in ``work_dir``.
        log (callable): Progress lines.
        num_test (int): Frames of the labelled held-out split rendered
            into ``testing/``. Defaults to 0.
        eval_split (str): The split evaluated on: ``val`` (where the demo
            was designed) or the held-out ``test``. Defaults to 'val'.
        dataset (str): The synthetic data's format, a key of
            :data:`ddml.analysis.runs.DEMO_DATASETS` (``kitti`` or
            ``waymo``); the configs must read it. Defaults to 'kitti'.

    Returns:
        dict: ``rows`` (per model), ``table`` (plain text), ``notes``
        (what the table's figures are, :data:`TABLE_NOTES`), ``figures``
        (paths), ``timings`` (seconds per step).
    """
    import torch

    from .demo_report import find_scalars, read_scalars, \
        train_seconds_per_iter
    from .model_eval import evaluate_run
    from .plots import plot_training_curves
    from .runs import (demo_dataset, ensure_dataset, schedule_options,
                       train_runs)

    spec = demo_dataset(dataset)
    check_demo_args(configs, data_root, work_dir, iters, skip_data=skip_data,
                    skip_train=skip_train, num_test=num_test,
                    eval_split=eval_split, dataset=dataset)
    t_start = time.perf_counter()
    cores = os.cpu_count() or 1
    names = list(configs)
    if parallel is None:
        parallel = max(1, min(len(names), cores))
    if threads is None:
        threads = max(1, cores // parallel)
    torch.set_num_threads(max(1, threads))
    work_dir, data_root = osp.abspath(work_dir), osp.abspath(data_root)
    fig_dir = osp.join(work_dir, 'figures')
    os.makedirs(fig_dir, exist_ok=True)
    steps = 4
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    log(f'ddml demo: {", ".join(names)}; {iters} iterations each, '
        f'{num_train} train / {num_val} val / {num_test} test frames, '
        f'evaluated on {eval_split}, seed {seed}; '
        f'{parallel} training(s) at a time with {threads} thread(s) each '
        f'(load average {load:.1f} on {cores} CPUs); work dir {work_dir}')
    timings = {}

    log(f'\n[1/{steps}] synthetic {spec.title}-format data')
    t0 = time.perf_counter()
    if skip_data:  # its infos were checked by check_demo_args
        log(f'data: using {data_root} as it is')
    else:
        ensure_dataset(data_root, num_train, num_val, seed, log=log,
                       num_test=num_test, dataset=dataset)
    timings['data_s'] = time.perf_counter() - t0

    log(f'\n[2/{steps}] training {" and ".join(names)} '
        f'({"in parallel" if parallel > 1 else "one after the other"}); '
        f'full logs under {work_dir}/<model>/')
    t0 = time.perf_counter()
    train_info, jobs = {}, []
    for name, config in configs.items():
        run_dir = osp.join(work_dir, name)
        ckpt = demo_checkpoint(work_dir, name, iters)
        if skip_train and osp.isfile(ckpt):
            log(f'{name}: reusing {ckpt}')
            train_info[name] = dict(checkpoint=ckpt, wall_s=float('nan'),
                                    cpu_s=float('nan'))
            continue
        jobs.append(dict(config=config, work_dir=run_dir,
                         cfg_options=schedule_options(iters, seed, data_root),
                         name=name, threads=threads))
    for job, info in zip(jobs, train_runs(jobs, parallel=parallel, log=log),
                         strict=True):
        log(f'{job["name"]}: trained in {info["wall_s"]:.0f} s wall '
            f'(CPU {info["cpu_s"]:.0f} s)')
        train_info[job['name']] = info
    timings['train_s'] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = []
    for i, (name, config) in enumerate(configs.items()):
        log(f'\n[3/{steps}] evaluating {name} ({i + 1}/{len(names)}) on '
            f'the {eval_split} split')
        row = evaluate_run(name, config, train_info[name]['checkpoint'],
                           fig_dir, data_root=data_root, split=eval_split)
        scalars_path = find_scalars(osp.join(work_dir, name))
        scalars = read_scalars(scalars_path) if scalars_path else {}
        row['train_s_per_iter'] = train_seconds_per_iter(scalars) \
            if scalars else float('nan')
        row['train_cpu_s_per_iter'] = train_info[name]['cpu_s'] / iters
        row['train_wall_s'] = train_info[name]['wall_s']
        row['_scalars'] = scalars
        rows.append(row)
    timings['eval_s'] = time.perf_counter() - t0

    log(f'\n[4/{steps}] report and figures')
    t0 = time.perf_counter()
    figures = [plot_training_curves(
        {r['name']: r['_scalars'] for r in rows},
        osp.join(fig_dir, 'training_curves.png'), smooth=1)]
    figures += demo_figures(
        rows, spec.info_file(data_root, eval_split), data_root, fig_dir,
        split=eval_split, dataset=dataset)
    for r in rows:
        figures += r['figures']
    timings['report_s'] = time.perf_counter() - t0
    timings['total_s'] = time.perf_counter() - t_start
    table = demo_table(rows, dataset=dataset)
    clean = [{k: v for k, v in r.items() if not k.startswith('_')}
             for r in rows]
    with open(osp.join(work_dir, 'demo_table.md'), 'w') as f:
        f.write(demo_table(clean, markdown=True, dataset=dataset) + '\n\n' +
                TABLE_NOTES[dataset] + '\n')
    with open(osp.join(work_dir, 'demo_results.json'), 'w') as f:
        json.dump(dict(dataset=dataset, configs=dict(configs), iters=iters,
                       num_train=num_train, num_val=num_val,
                       num_test=num_test, eval_split=eval_split, seed=seed,
                       threads=threads, parallel=parallel, rows=clean,
                       timings=timings), f, indent=1,
                  default=lambda o: o.tolist()
                  if isinstance(o, np.ndarray) else str(o))
    return dict(rows=clean, table=table, notes=TABLE_NOTES[dataset],
                figures=figures, timings=timings)
