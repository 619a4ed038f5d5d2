"""How the losses pull on the shared feature map, and at what scale the
descriptors live: the measurements behind "what does the QI loss add?".

For one training batch of a :class:`DepthDiscriminativeDetector`, along
its own training route (``extract_feat`` -> ``aux_feature_map`` ->
``loss_by_feat``), :func:`feature_gradient_stats` returns

* per loss key, its value (``value/<key>``) and the norm of its gradient with respect to the feature map
  the descriptors are read from (``grad_norm/<key>``), and for every
  auxiliary loss its size relative to the gradient of the wrapped
  detector's own losses together (``share/<key>``) and their cosine
  (``cos/<key>``: > 0 pulls the same way as detection, < 0 against it);
* the scale of that map (``feat_rms``: root mean square of its values) and
  of the descriptors (``desc_norm``: mean L2 norm);
* over the batch's object pairs with ``0 < d <= eps`` (the QI loss's
  neighbourhood; ``d`` = depth gap in metres, ``e`` = descriptor
  distance): the fractions below ``d / K - B``, inside, above ``K d + B``
  (``pairs_below`` / ``pairs_inside`` / ``pairs_above``), the median of
  ``e / d`` (``median_e_per_m``: descriptor units per metre of depth gap,
  to hold against ``1/K`` and ``K``) and the median depth gap.

Nothing here changes the model: batch-norm running statistics are restored
after the extra forward pass, and gradients are taken with
``torch.autograd.grad`` (no ``.grad`` is written).
"""
import math
from typing import Dict, Optional

import torch
from torch import Tensor

__all__ = ['feature_gradient_stats', 'loss_gradient_norms',
           'read_diagnostics', 'plot_diagnostics']


def _aux_keys() -> tuple:
    from ..models.detectors.depth_discriminative import AUX_LOSS_KEYS
    return AUX_LOSS_KEYS


def _buffers(model: torch.nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.named_buffers()}


def feature_gradient_stats(model, inputs: dict, data_samples: list,
                           K: float, B: float, eps: float) -> Dict[str, float]:
    """Gradient shares on the descriptor feature map and descriptor scale
    for one batch (see the module docstring for the keys).

    Args:
        model (DepthDiscriminativeDetector): The wrapper, in train mode.
        inputs (dict): Preprocessed batch inputs (``imgs`` (B, 3, H, W)).
        data_samples (list[Det3DDataSample]): The batch's ground truth.
        K (float): Quasi-isometry constant (bounds ``d/K - B``, ``K d + B``).
        B (float): Additive constant of the bounds.
        eps (float): Largest depth gap (m) of the pairs compared.

    Returns:
        dict[str, float]: The statistics; NaN where undefined (e.g. fewer
        than two objects).
    """
    aux_keys = _aux_keys()
    saved = _buffers(model)
    try:
        with torch.enable_grad():
            feats = model.extract_feat(inputs)
            feat, stride = model.aux_feature_map(feats, inputs)
            losses = model.loss_by_feat(feats, inputs, data_samples)
            grads: Dict[str, Tensor] = {}
            stats_values: Dict[str, float] = {}
            for key, value in losses.items():
                if isinstance(value, (list, tuple)):
                    value = sum(value)
                if not key.startswith('loss') or not torch.is_tensor(value) \
                        or not value.requires_grad:
                    continue
                stats_values[key] = float(value.detach())
                grad, = torch.autograd.grad(value, feat, retain_graph=True,
                                            allow_unused=True)
                grads[key] = torch.zeros_like(feat) if grad is None \
                    else grad.detach()
            gt, _ = model.auxiliary_ground_truth(data_samples)
            objects = model.object_descriptors(feat.detach(), stride, gt)
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])
    stats: Dict[str, float] = {f'value/{k}': v
                                for k, v in stats_values.items()}
    det = sum((g for k, g in grads.items() if k not in aux_keys),
              torch.zeros_like(feat))
    det_norm = float(det.norm())
    stats['grad_norm/detector'] = det_norm
    for key, g in grads.items():
        norm = float(g.norm())
        stats[f'grad_norm/{key}'] = norm
        if key in aux_keys:
            stats[f'share/{key}'] = norm / det_norm if det_norm > 0 \
                else float('nan')
            denom = norm * det_norm
            stats[f'cos/{key}'] = float((g * det).sum()) / denom \
                if denom > 0 else float('nan')
    stats['feat_rms'] = float(feat.detach().float().pow(2).mean().sqrt())
    desc, depth = objects.descriptors.detach(), objects.depths.detach()
    stats['num_objects'] = float(desc.shape[0])
    stats['desc_norm'] = float(desc.norm(dim=1).mean()) if len(desc) \
        else float('nan')
    nan = float('nan')
    stats.update(pairs_below=nan, pairs_inside=nan, pairs_above=nan,
                 median_e_per_m=nan, median_gap_m=nan)
    if len(desc) >= 2:
        i, j = torch.triu_indices(len(desc), len(desc), 1)
        e = (desc[i] - desc[j]).norm(dim=1)
        d = (depth[i] - depth[j]).abs()
        keep = (d > 0) & (d <= eps)
        if bool(keep.any()):
            e, d = e[keep], d[keep]
            below = e < d / K - B
            above = e > K * d + B
            n = float(e.numel())
            stats.update(
                pairs_below=float(below.sum()) / n,
                pairs_above=float(above.sum()) / n,
                pairs_inside=float((~below & ~above).sum()) / n,
                median_e_per_m=float((e / d).median()),
                median_gap_m=float(d.median()))
    return {k: (v if math.isfinite(v) else nan) for k, v in stats.items()}


def loss_gradient_norms(config: str,
                        checkpoint: Optional[str],
                        data_root: Optional[str] = None,
                        num_batches: int = 2,
                        cfg_options: Optional[Dict] = None,
                        seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Value and gradient norm at the descriptor feature map of each loss,
    averaged over ``num_batches`` random training batches of a checkpoint
    (:func:`feature_gradient_stats` per batch).

    Args:
        config (str): A ``DepthDiscriminativeDetector`` config.
        checkpoint (str, optional): Its weights (None: initialisation).
        data_root (str, optional): Replaces the training data root.
        num_batches (int): Batches (of the config's batch size).
        cfg_options (dict, optional): Merged into the config.
        seed (int): Seed of the batch choice.

    Returns:
        dict: loss key -> ``value`` and ``grad_norm`` (means over batches).
    """
    import copy

    import numpy as np
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS
    from ..models.defaults import QI_B, QI_EPS, QI_K
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
        stats = feature_gradient_stats(model, data['inputs'],
                                       data['data_samples'], QI_K, QI_B,
                                       QI_EPS)
        for name, v in stats.items():
            if not name.startswith('value/'):
                continue
            key = name[len('value/'):]
            acc = sums.setdefault(key, dict(value=0., grad_norm=0.))
            acc['value'] += v / num_batches
            acc['grad_norm'] += stats[f'grad_norm/{key}'] / num_batches
    return sums


def read_diagnostics(path: str) -> Dict[str, list]:
    """The records of :class:`ddml.engine.AuxLossDiagnosticsHook` as
    columns (``iter`` and every statistic; NaN where a record lacks it)."""
    import json
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    keys = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    return {k: [r.get(k, float('nan')) for r in rows] for k in keys}


#: (title, statistic keys, y label) of the panels of :func:`plot_diagnostics`.
_PANELS = (
    ('gradient at the shared map, relative to the detector losses\'',
     ('share/loss_qi', 'share/loss_obj_depth'), '||g_loss|| / ||g_detector||'),
    ('cosine with the detector losses\' gradient',
     ('cos/loss_qi', 'cos/loss_obj_depth'), 'cosine'),
    ('scale of the shared map and of the descriptors',
     ('feat_rms', 'desc_norm'), 'value'),
    ('object pairs (0 < d <= eps) against d/K - B <= e <= K d + B',
     ('pairs_below', 'pairs_inside', 'pairs_above'), 'fraction'),
    ('descriptor distance per metre of depth gap',
     ('median_e_per_m', ), 'median e / d'),
)


def plot_diagnostics(runs: Dict[str, Dict[str, list]], out_path: str,
                     K: float, title: str = '') -> str:
    """One figure of the diagnostics of several runs over training.

    Args:
        runs (dict): Run name -> :func:`read_diagnostics` columns.
        out_path (str): The PNG to write.
        K (float): Quasi-isometry constant (``1/K`` and ``K`` are drawn on
            the e/d panel).
        title (str): Figure title.

    Returns:
        str: ``out_path``.
    """
    import numpy as np

    from .plots import _plt, _save
    plt = _plt()
    ncols = 3
    nrows = -(-len(_PANELS) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols,
                                                    3.9 * nrows))
    axes = list(np.ravel(axes))
    for ax in axes[len(_PANELS):]:
        ax.axis('off')
    styles = ('-', '--', ':')
    for ax, (panel, keys, ylabel) in zip(axes, _PANELS):
        for c, (name, cols) in enumerate(runs.items()):
            for k, key in enumerate(keys):
                if key not in cols or all(
                        not math.isfinite(v) for v in cols[key]):
                    continue
                ax.plot(cols['iter'], cols[key], styles[k % 3],
                        color=f'C{c}', label=f'{name}: {key}')
        if keys == ('median_e_per_m', ):
            for v, lab in ((1 / K, '1/K'), (K, 'K')):
                ax.axhline(v, color='grey', lw=0.8, ls='--')
                ax.text(0, v, f' {lab}', va='bottom', fontsize=7,
                        color='grey')
        ax.set_title(panel, fontsize=8)
        ax.set_xlabel('iteration')
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)
