"""Efficacy benchmark: seeds x {baseline, +QI, +depth map, +both,
+MetricDepth} on the demo schedule.

Every variant is one of the demo configs with ``--cfg-options``; each
(variant, seed) run trains through ``tools/train.py`` in a subprocess and
is evaluated once (:func:`ddml.analysis.model_eval.evaluate_run`). Results
are cached per run (``<work_dir>/<variant>/seed<k>/result.json``), so an
interrupted benchmark resumes where it stopped.
"""
import json
import math
import os
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .demo_report import find_scalars, format_table, read_scalars, \
    train_seconds_per_iter

__all__ = ['VARIANTS', 'DEFAULT_VARIANTS', 'run_one', 'aggregate',
           'efficacy_tables', 'loss_magnitudes', 'loss_gradient_norms']

BASELINE = 'configs/demo/smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-' \
    'mono3d.py'
DDML = 'configs/demo/ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-' \
    'mono3d.py'
METRICDEPTH = 'configs/demo/ddml-metricdepth_smoke_r18-half_secondfpn_' \
    '1xb8-1k_demo-kitti-mono3d.py'

#: name -> (title, config, extra --cfg-options)
VARIANTS = OrderedDict([
    ('baseline', ('baseline (SMOKE)', BASELINE, [])),
    ('qi', ('+ quasi-isometric loss', DDML, ['model.depth_map_head=None'])),
    ('dmap', ('+ depth-map head', DDML, ['model.qi_loss=None'])),
    ('qi_dmap', ('+ both (DDML)', DDML, [])),
    ('metricdepth', ('+ MetricDepth loss', METRICDEPTH,
                     ['model.depth_map_head=None'])),
    # diagnostics, not in the default set
    ('qi_w10', ('+ quasi-isometric loss x10', DDML,
                ['model.depth_map_head=None',
                 'model.qi_loss.loss_weight=10.0'])),
    ('qi_dmap_w10', ('+ both, QI loss x10', DDML,
                     ['model.qi_loss.loss_weight=10.0'])),
])
DEFAULT_VARIANTS = ['baseline', 'qi', 'dmap', 'qi_dmap', 'metricdepth']

# (column title, row key, scale, digits)
_COLUMNS = [
    ('Car AP3D mod 0.7', 'AP3D_mod', 1, 2),
    ('Car AP3D mod 0.5', 'AP3D_mod_loose', 1, 2),
    ('Car APBEV mod 0.7', 'APBEV_mod', 1, 2),
    ('Car APBEV mod 0.5', 'APBEV_mod_loose', 1, 2),
    ('Car AP2D mod', 'AP2D_mod', 1, 2),
    ('depth MAE (m)', 'depth_mae', 1, 3),
    ('matched', 'depth_matched', 1, 0),
    ('Spearman', 'spearman', 1, 3),
    ('in bounds %', 'frac_inside', 100, 1),
    ('below d/K-B %', 'frac_below', 100, 1),
    ('train s/it', 'train_s_per_iter', 1, 2),
    ('CPU s/it', 'train_cpu_s_per_iter', 1, 2),
    ('infer ms/img', 'infer_ms', 1, 1),
    ('infer CPU ms/img', 'infer_cpu_ms', 1, 1),
]


def loss_magnitudes(scalars: Dict[str, np.ndarray],
                    last_frac: float = 0.25) -> Dict[str, Dict[str, float]]:
    """First and final (mean of the last ``last_frac`` of the logged
    points) value of every ``loss*`` column."""
    out = {}
    for key, values in scalars.items():
        if not key.startswith('loss'):
            continue
        v = values[np.isfinite(values)]
        if v.size == 0:
            continue
        k = max(1, int(round(v.size * last_frac)))
        out[key] = dict(first=float(v[0]), final=float(v[-k:].mean()))
    return out


def run_one(variant: str,
            seed: int,
            iters: int,
            work_dir: str,
            data_root: str,
            log: Callable[[str], None] = print,
            figures: bool = True) -> Dict:
    """Train and evaluate one (variant, seed), or load its cached result."""
    from .model_eval import evaluate_run
    from .runs import schedule_options, train_run
    title, config, extra = VARIANTS[variant]
    run_dir = osp.join(work_dir, variant, f'seed{seed}')
    result_path = osp.join(run_dir, 'result.json')
    if osp.isfile(result_path):
        with open(result_path) as f:
            row = json.load(f)
        if row.get('iters') == iters:
            log(f'{variant} seed {seed}: cached ({result_path})')
            return row
    opts = schedule_options(iters, seed, data_root, extra=extra)
    info = train_run(config, run_dir, opts, name=f'{variant}/s{seed}',
                     log=log)
    row = evaluate_run(f'{variant}_seed{seed}', config, info['checkpoint'],
                       osp.join(run_dir, 'eval'), data_root=data_root,
                       cfg_options=_as_dict(extra), figures=figures,
                       progress=False)
    scalars_path = find_scalars(run_dir)
    scalars = read_scalars(scalars_path) if scalars_path else {}
    row.update(
        variant=variant, seed=seed, iters=iters, config=config,
        cfg_options=extra, train_wall_s=info['wall_s'],
        train_cpu_s=info['cpu_s'],
        train_cpu_s_per_iter=info['cpu_s'] / iters,
        train_s_per_iter=train_seconds_per_iter(scalars)
        if scalars else float('nan'),
        losses=loss_magnitudes(scalars) if scalars else {},
        loadavg=os.getloadavg()[0])
    tmp = result_path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(row, f, indent=1, default=str)
    os.replace(tmp, result_path)
    return row


def _as_dict(options: Sequence[str]) -> Dict:
    """``key=value`` strings parsed as ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    out = {}
    for opt in options:
        key, value = opt.split('=', 1)
        out[key] = DictAction._parse_iterable(value)
    return out


def _num(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return float('nan')
    return v


def aggregate(rows: Sequence[Dict]) -> Dict[str, Dict[str, Dict]]:
    """Mean and sample standard deviation over seeds, per variant/key."""
    by_variant: Dict[str, List[Dict]] = OrderedDict()
    for row in rows:
        by_variant.setdefault(row['variant'], []).append(row)
    out = OrderedDict()
    for variant, vrows in by_variant.items():
        stats = {}
        keys = set()
        for r in vrows:
            keys.update(k for k, v in r.items()
                        if isinstance(v, (int, float)) and
                        not isinstance(v, bool))
        for key in keys:
            vals = np.array([_num(r.get(key)) for r in vrows])
            vals = vals[np.isfinite(vals)]
            stats[key] = dict(
                mean=float(vals.mean()) if vals.size else float('nan'),
                std=float(vals.std(ddof=1)) if vals.size > 1 else
                float('nan'),
                n=int(vals.size))
        losses = {}
        for r in vrows:
            for lk, lv in r.get('losses', {}).items():
                losses.setdefault(lk, []).append(lv['final'])
        stats['_losses'] = {k: float(np.mean(v)) for k, v in losses.items()}
        stats['_seeds'] = sorted(int(r['seed']) for r in vrows)
        out[variant] = stats
    return out


def _pm(stat: Optional[Dict], scale: float, digits: int) -> str:
    if not stat or not math.isfinite(stat.get('mean', float('nan'))):
        return '-'
    mean = stat['mean'] * scale
    std = stat['std'] * scale
    if not math.isfinite(std):
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def efficacy_tables(agg: Dict[str, Dict], markdown: bool = True) -> str:
    """The results table (mean ± std over seeds) and the loss table."""
    header = ['variant', 'seeds'] + [c[0] for c in _COLUMNS]
    rows = []
    for variant, stats in agg.items():
        title = VARIANTS[variant][0] if variant in VARIANTS else variant
        rows.append([title, ' '.join(map(str, stats['_seeds']))] + [
            _pm(stats.get(key), scale, digits)
            for _, key, scale, digits in _COLUMNS
        ])
    table = format_table(header, rows, markdown=markdown)
    loss_keys = []
    for stats in agg.values():
        loss_keys.extend(k for k in stats['_losses'] if k not in loss_keys)
    lrows = []
    for variant, stats in agg.items():
        title = VARIANTS[variant][0] if variant in VARIANTS else variant
        lrows.append([title] + [
            f"{stats['_losses'][k]:.3f}" if k in stats['_losses'] else '-'
            for k in loss_keys
        ])
    losses = format_table(['variant (final logged loss, mean over seeds)'] +
                          loss_keys, lrows, markdown=markdown)
    return table + '\n\n' + losses


def loss_gradient_norms(config: str,
                        checkpoint: Optional[str],
                        data_root: Optional[str] = None,
                        num_batches: int = 2,
                        cfg_options: Optional[Dict] = None,
                        seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Value and gradient norm at the descriptor feature map of each loss.

    Compares how hard each term pulls on the shared feature map (the one
    the object descriptors are read from): ``||d loss / d feat||`` per loss
    key, over ``num_batches`` training batches (training pipeline, batch
    size of the config). Needs a ``DepthDiscriminativeDetector`` config.

    Returns:
        dict: loss key -> ``value`` and ``grad_norm`` (means over batches).
    """
    import copy

    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS
    from ddml.models.descriptors import infer_feature_stride
    from .model_eval import load_model
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.model.get('type') != 'DepthDiscriminativeDetector':
        raise ValueError('loss_gradient_norms needs a '
                         'DepthDiscriminativeDetector config')
    model, _ = load_model(cfg, checkpoint)
    model.train()
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    if data_root is not None:
        ds_cfg.data_root = data_root
    dataset = DATASETS.build(ds_cfg)
    batch_size = int(cfg.train_dataloader.get('batch_size', 8))
    rng = np.random.default_rng(seed)
    sums: Dict[str, Dict[str, float]] = {}
    for _ in range(num_batches):
        idx = rng.choice(len(dataset), size=min(batch_size, len(dataset)),
                         replace=False)
        data = model.data_preprocessor(
            pseudo_collate([dataset[int(i)] for i in idx]), True)
        inputs, samples = data['inputs'], data['data_samples']
        feats = model.detector.extract_feat(inputs)
        feat = model.select_feature(feats)
        losses = dict(model.detector.bbox_head.loss(feats, samples))
        stride = infer_feature_stride(inputs['imgs'].shape[-2:],
                                      feat.shape[-2:])
        losses.update(model.loss_auxiliary(feat, stride, samples))
        for key, value in losses.items():
            if isinstance(value, (list, tuple)):
                value = sum(value)
            if not torch.is_tensor(value) or not value.requires_grad:
                continue
            grad, = torch.autograd.grad(value, feat, retain_graph=True,
                                        allow_unused=True)
            norm = float(grad.norm()) if grad is not None else 0.
            acc = sums.setdefault(key, dict(value=0., grad_norm=0.))
            acc['value'] += float(value.detach()) / num_batches
            acc['grad_norm'] += norm / num_batches
    return sums
