"""Learning curves: validation figures against training iterations.

A run trained with in-training validation (``train_cfg.val_interval``)
leaves one line per validation in mmengine's ``vis_data/scalars.json``
(``step`` = the iteration). :func:`read_val_curve` reads the figures the
demo reports from it and :func:`plot_learning_curves` draws them for one or
more runs: Car AP40 (2D, BEV and 3D at IoU 0.5), centre-distance AP and
the depth error of matched objects by range.
"""
import json
from typing import Dict, List, Mapping, Sequence

import numpy as np

__all__ = ['CURVE_KEYS', 'read_val_curve', 'plot_learning_curves',
           'curve_table']

#: short name -> key of the validation scalars (KittiMetric's and
#: CentreDistanceMetric's, as the Runner logs them).
CURVE_KEYS = {
    'AP2D_mod': 'Kitti metric/pred_instances_3d/KITTI/'
    'Car_2D_AP40_moderate_strict',
    'AP2Dreg_mod': 'Kitti metric/pred_instances/KITTI/'
    'Car_2D_AP40_moderate_strict',
    'APBEV_mod_loose': 'Kitti metric/pred_instances_3d/KITTI/'
    'Car_BEV_AP40_moderate_loose',
    'AP3D_mod_loose': 'Kitti metric/pred_instances_3d/KITTI/'
    'Car_3D_AP40_moderate_loose',
    'APBEV_mod': 'Kitti metric/pred_instances_3d/KITTI/'
    'Car_BEV_AP40_moderate_strict',
    'AP3D_mod': 'Kitti metric/pred_instances_3d/KITTI/'
    'Car_3D_AP40_moderate_strict',
    'cd_Car_mAP': 'CentreDist/Car_mAP',
    'cd_Car_AP_1.0m': 'CentreDist/Car_AP_1.0m',
    'depth_0-20m': 'CentreDist/depth_abs_err_0-20m',
    'depth_20-40m': 'CentreDist/depth_abs_err_20-40m',
    'depth_40m+': 'CentreDist/depth_abs_err_40m+',
}


def read_val_curve(scalars_path: str) -> Dict[str, np.ndarray]:
    """The validation figures of a run, one entry per validation.

    A validation line gets the iteration of the training line before it
    (mmengine logs validation figures with ``step`` = epoch unless the
    logger hook sets ``log_metric_by_epoch=False``).

    Args:
        scalars_path (str): The run's ``vis_data/scalars.json``.

    Returns:
        dict[str, np.ndarray]: ``step`` (iterations) and every
        :data:`CURVE_KEYS` short name (NaN where a validation lacks it).

    Raises:
        ValueError: If the file holds no validation line.
    """
    marker = CURVE_KEYS['AP3D_mod_loose']
    steps: List[float] = []
    values: Dict[str, List[float]] = {k: [] for k in CURVE_KEYS}
    last_iter = 0.0
    with open(scalars_path) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            if 'lr' in row:  # a training line
                last_iter = float(row.get('step', last_iter))
                continue
            if marker not in row:
                continue
            steps.append(last_iter)
            for name, key in CURVE_KEYS.items():
                v = row.get(key)
                values[name].append(float(v) if isinstance(
                    v, (int, float)) else float('nan'))
    if not steps:
        raise ValueError(f'{scalars_path} has no validation figures '
                         f'({marker!r}); train with train_cfg.val_interval '
                         'smaller than max_iters to record a curve')
    out = {'step': np.asarray(steps)}
    out.update({k: np.asarray(v) for k, v in values.items()})
    return out


def curve_table(curves: Mapping[str, Mapping[str, np.ndarray]],
                keys: Sequence[str] = ('AP2D_mod', 'APBEV_mod_loose',
                                       'AP3D_mod_loose', 'cd_Car_mAP',
                                       'depth_0-20m', 'depth_20-40m')
                ) -> str:
    """A markdown table: one row per (run, validation step)."""
    from .demo_report import format_table
    rows = []
    for run, curve in curves.items():
        for i, step in enumerate(curve['step']):
            rows.append([run, int(step)] + [float(curve[k][i]) for k in keys])
    return format_table(['run', 'iteration'] + list(keys), rows,
                        markdown=True, digits=3)


def plot_learning_curves(curves: Mapping[str, Mapping[str, np.ndarray]],
                         out_path: str,
                         title: str = 'learning curve (val split)') -> str:
    """Three panels against iterations: KITTI Car AP40 moderate (2D at IoU
    0.7, BEV and 3D at 0.5), centre-distance AP (mean over 0.5-4 m, and at
    1 m), and the depth error of centre-matched objects by range.

    Args:
        curves (Mapping[str, dict]): Run name -> :func:`read_val_curve`.
        out_path (str): PNG to write.
        title (str): Figure title.

    Returns:
        str: ``out_path``.
    """
    from .plots import _plt, _save
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    styles = ['-', '--', ':', '-.']
    panels = [
        (axes[0], [('AP2D_mod', '2D, IoU 0.7'),
                   ('APBEV_mod_loose', 'BEV, IoU 0.5'),
                   ('AP3D_mod_loose', '3D, IoU 0.5')],
         'Car AP40 moderate (%)'),
        (axes[1], [('cd_Car_mAP', 'mean 0.5-4 m'),
                   ('cd_Car_AP_1.0m', '1 m')], 'Car centre-distance AP'),
        (axes[2], [('depth_0-20m', '0-20 m'), ('depth_20-40m', '20-40 m'),
                   ('depth_40m+', '40+ m')],
         '|z_pred - z_gt| of matched objects (m)'),
    ]
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, series, ylabel in panels:
        for (key, label), colour in zip(series, colours):
            for (run, curve), style in zip(curves.items(), styles):
                y = np.asarray(curve[key], dtype=float)
                ok = np.isfinite(y)
                if ok.any():
                    ax.plot(curve['step'][ok], y[ok], style, marker='o',
                            ms=3, color=colour,
                            label=f'{label}' + (f' ({run})'
                                                if len(curves) > 1 else ''))
        ax.set_xlabel('training iteration (batch 8)')
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)
