"""PNG figures of the demo, of ``tools/analyze_descriptors.py`` and of a
pre-registered protocol's analysis (:func:`plot_paired_seeds`).

matplotlib with the Agg backend (no display needed).
"""
import os
import os.path as osp
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ..models.defaults import QI_B, QI_EPS, QI_K

__all__ = ['plot_training_curves', 'detector_loss', 'plot_pair_distances',
           'plot_pca', 'plot_paired_seeds']


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> str:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches='tight')
    _plt().close(fig)
    return path


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or y.size < window:
        return y
    kernel = np.ones(window) / window
    pad = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(pad, kernel, mode='valid')


_AUX_KEYS = ('loss_qi', 'loss_metric', 'loss_obj_depth', 'loss_dense_metric')


def detector_loss(scalars: Mapping[str, np.ndarray]
                  ) -> Optional[np.ndarray]:
    """The detector's own loss of a run: the logged total less DDML's
    auxiliary losses (:data:`_AUX_KEYS`) that the run logged.

    Args:
        scalars (Mapping[str, np.ndarray]): Columns of
            :func:`~ddml.analysis.demo_report.read_scalars` (``loss``
            and ``loss_*``).

    Returns:
        np.ndarray | None: Per logged step; None without a ``loss``
        column.
    """
    if 'loss' not in scalars:
        return None
    own = np.asarray(scalars['loss'], dtype=float).copy()
    for key in _AUX_KEYS:
        if key in scalars:
            own -= np.nan_to_num(np.asarray(scalars[key], dtype=float))
    return own


def plot_training_curves(runs: Mapping[str, Dict[str, np.ndarray]],
                         path: str,
                         smooth: int = 1) -> str:
    """Loss curves of several runs (columns of
    :func:`~ddml.analysis.demo_report.read_scalars`).

    Panels: total loss, the detector's own losses (the total less DDML's
    auxiliary losses, :func:`detector_loss`: comparable between a baseline
    and its ``ddml_*`` run whatever the head's loss names), DDML's
    auxiliary losses (only the runs that have them) and the learning
    rate.

    Args:
        runs (Mapping[str, dict]): Run name -> scalar columns (``step``,
            ``loss``, ...).
        path (str): PNG to write.
        smooth (int): Moving-average window (in logged points).

    Returns:
        str: ``path``.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    styles = {'loss_qi': '-', 'loss_metric': '-.', 'loss_obj_depth': '--',
              'loss_dense_metric': ':'}
    for r, (name, sc) in enumerate(runs.items()):
        color = colors[r % len(colors)]
        step = sc.get('step', np.arange(len(sc.get('loss', []))))
        if 'loss' in sc:
            axes[0].plot(step, _smooth(sc['loss'], smooth), color=color,
                         label=name)
        own = detector_loss(sc)
        if own is not None:
            axes[1].plot(step, _smooth(own, smooth), color=color,
                         label=name)
        for key in _AUX_KEYS:
            if key in sc and np.isfinite(sc[key]).any():
                axes[2].plot(step, _smooth(sc[key], smooth), color=color,
                             ls=styles[key], label=f'{name}: {key}')
        if 'lr' in sc:
            axes[3].plot(step, sc['lr'], color=color, label=name)
    titles = ('total loss', "detector's own losses (total - auxiliary)",
              'DDML auxiliary losses', 'learning rate')
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not axes[2].get_legend_handles_labels()[0]:
        axes[2].text(0.5, 0.5, 'no auxiliary loss', ha='center',
                     va='center', transform=axes[2].transAxes)
    axes[0].set_ylabel('loss')
    axes[3].ticklabel_format(axis='y', style='sci', scilimits=(0, 0))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle('training curves' + (f' (moving average of {smooth} log '
                                      'points)' if smooth > 1 else ''))
    return _save(fig, path)


def plot_pair_distances(depth_dist: np.ndarray,
                        desc_dist: np.ndarray,
                        path: str,
                        K: float = QI_K,
                        B: float = QI_B,
                        eps: Optional[float] = QI_EPS,
                        title: str = '',
                        stats: Optional[Dict[str, float]] = None,
                        max_points: int = 20000,
                        seed: int = 0) -> str:
    """Descriptor distance against depth distance of object pairs.

    Draws the quasi-isometry bounds ``K d + B`` and ``d / K - B`` and the
    neighbourhood radius ``eps`` (where it lies inside the pairs' depth
    distances). Descriptor distances are usually on a
    different scale than metres; a second panel rescales them by their
    median ratio to depth distance so that the shape is comparable across
    models (the bounds apply to the raw left panel only).

    Returns:
        str: ``path``.
    """
    plt = _plt()
    d = np.asarray(depth_dist, dtype=float)
    e = np.asarray(desc_dist, dtype=float)
    if d.size > max_points:
        pick = np.random.default_rng(seed).choice(d.size, max_points,
                                                  replace=False)
        d, e = d[pick], e[pick]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    ax.scatter(d, e, s=3, alpha=0.25, color='tab:blue', lw=0,
               label='object pairs')
    xmax = float(d.max()) if d.size else 1.
    xs = np.linspace(0, max(xmax, 1e-3), 200)
    ax.plot(xs, K * xs + B, color='tab:red', lw=1.5,
            label=f'upper bound K d + B (K={K:g}, B={B:g})')
    ax.plot(xs, np.maximum(xs / K - B, 0), color='tab:green', lw=1.5,
            label='lower bound d / K - B')
    if eps is not None and eps < xmax:
        ax.axvline(eps, color='gray', ls=':', lw=1,
                   label=f'eps = {eps:g} m (bounds checked left of it)')
    # the bounds apply within eps: show that window and both bounds in it
    x_hi = min(xmax, 2 * eps) if eps is not None else xmax
    x_hi = max(x_hi, 1e-3)
    ymax = float(np.percentile(e[d <= x_hi], 99.5)) \
        if (d <= x_hi).any() else 1.
    ax.set_xlim(0, x_hi)
    ax.set_ylim(0, max(ymax, x_hi / K - B, 1e-6) * 1.1)
    ax.set_xlabel('depth distance |z_i - z_j| (m)')
    ax.set_ylabel('descriptor distance ||f_i - f_j||')
    ax.set_title('raw descriptor distance (near pairs)', fontsize=10)
    ax.legend(fontsize=7, loc='upper left')
    ax.grid(alpha=0.3)

    ax = axes[1]
    if d.size:
        bins = np.linspace(0, xmax, 21)
        which = np.clip(np.digitize(d, bins) - 1, 0, 19)
        scale = np.median(e[d > 0] / d[d > 0]) if (d > 0).any() else 1.
        scale = scale if scale > 0 else 1.
        ax.scatter(d, e / scale, s=3, alpha=0.15, color='tab:blue', lw=0)
        centres, med, q1, q3 = [], [], [], []
        for b in range(20):
            sel = which == b
            if sel.sum() >= 5:
                centres.append(0.5 * (bins[b] + bins[b + 1]))
                vals = e[sel] / scale
                med.append(np.median(vals))
                q1.append(np.percentile(vals, 25))
                q3.append(np.percentile(vals, 75))
        if centres:
            ax.plot(centres, med, color='black', lw=2, label='median per bin')
            ax.fill_between(centres, q1, q3, color='black', alpha=0.15,
                            label='25-75 %')
        ax.plot(xs, xs, color='tab:red', ls='--', lw=1, label='y = d')
        ax.set_ylim(0, float(np.percentile(e / scale, 99.5)) * 1.1 + 1e-6)
        ax.set_title(f'all pairs, descriptor distance / {scale:.3g} '
                     '(median ratio to depth distance)', fontsize=10)
        ax.legend(fontsize=7, loc='upper left')
    ax.set_xlabel('depth distance |z_i - z_j| (m)')
    ax.grid(alpha=0.3)
    sub = ''
    if stats:
        sub = (f"Spearman {stats.get('spearman', float('nan')):.3f}, "
               'inside bounds '
               f"{100 * stats.get('frac_inside', float('nan')):.1f} %"
               f" of {stats.get('num_pairs_eps', 0)} pairs within eps, "
               f"{stats.get('num_objects', 0)} objects")
    fig.suptitle(f'{title}\n{sub}' if sub else title, y=1.03)
    return _save(fig, path)


def plot_pca(proj: np.ndarray,
             depths: np.ndarray,
             path: str,
             ratio: Optional[np.ndarray] = None,
             title: str = '') -> str:
    """2-D PCA projection of object descriptors coloured by depth.

    Returns:
        str: ``path``.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    proj = np.asarray(proj, dtype=float).reshape(-1, 2)
    depths = np.asarray(depths, dtype=float).reshape(-1)
    order = np.argsort(depths)
    sc = ax.scatter(proj[order, 0], proj[order, 1], c=depths[order],
                    cmap='viridis', s=10, alpha=0.85, lw=0)
    fig.colorbar(sc, ax=ax, label='object depth z (m)')
    if ratio is not None:
        ax.set_xlabel(f'PC 1 ({100 * ratio[0]:.1f} % of variance)')
        ax.set_ylabel(f'PC 2 ({100 * ratio[1]:.1f} % of variance)')
    else:
        ax.set_xlabel('PC 1')
        ax.set_ylabel('PC 2')
    ax.set_title(title or 'object descriptors (PCA)')
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_paired_seeds(panels: Sequence[Mapping],
                      comparisons: Sequence[Mapping],
                      path: str,
                      title: str = '') -> str:
    """Paired-seed runs at a glance: each run's value, the seeds joined
    across arms, and the paired differences with their intervals.

    One panel per metric (``panels``): x = arm, a dot per run, a grey line
    per seed through the arms it ran in, and each arm's mean with its 95 %
    Student-t interval (black). A last panel (a forest plot) draws
    ``comparisons``: mean paired difference and interval per row, primary
    endpoints in colour (blue when significant, orange when not), the
    others grey, a vertical line at 0.

    Args:
        panels (Sequence[Mapping]): ``label`` (the metric's name) and
            ``arms`` (arm label -> {seed: value}, in drawing order).
        comparisons (Sequence[Mapping]): ``label``, ``mean``, ``low``,
            ``high`` (the metric's units), ``primary`` (bool),
            ``significant`` (bool, primaries only) and ``note`` (text
            written beside the row, e.g. the Holm-adjusted p).
        path (str): PNG to write.
        title (str): Figure title.

    Returns:
        str: ``path``.
    """
    from .efficacy import mean_interval
    plt = _plt()
    n = len(panels) + (1 if comparisons else 0)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
    axes = axes[0]
    for ax, panel in zip(axes, panels):
        arms = list(panel['arms'].items())
        seeds = sorted({s for _, vals in arms for s in vals})
        for seed in seeds:
            xs = [i for i, (_, vals) in enumerate(arms) if seed in vals]
            ys = [arms[i][1][seed] for i in xs]
            ax.plot(xs, ys, color='0.6', lw=0.8, alpha=0.7, zorder=1)
            ax.scatter(xs, ys, s=14, color='tab:blue', alpha=0.8, lw=0,
                       zorder=2)
        for i, (_, vals) in enumerate(arms):
            m = mean_interval(list(vals.values()))
            if np.isfinite(m['low']):
                ax.errorbar(i + 0.18, m['mean'],
                            yerr=[[m['mean'] - m['low']],
                                  [m['high'] - m['mean']]],
                            fmt='s', color='black', ms=5, capsize=4,
                            zorder=3)
            else:
                ax.plot(i + 0.18, m['mean'], 's', color='black', ms=5,
                        zorder=3)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels([f'{a}\n({len(v)} runs)' for a, v in arms],
                           fontsize=8)
        ax.set_xlim(-0.5, len(arms) - 0.3)
        ax.set_ylabel(panel['label'])
        ax.set_title(f'{panel["label"]}: runs (lines join a seed), '
                     'mean and 95 % CI', fontsize=9)
        ax.grid(alpha=0.3, axis='y')
    if comparisons:
        ax = axes[-1]
        ys = np.arange(len(comparisons))[::-1]
        for y, c in zip(ys, comparisons):
            color = ('tab:blue' if c.get('significant') else 'tab:orange') \
                if c.get('primary') else '0.5'
            if np.isfinite(c['low']):
                ax.errorbar(c['mean'], y, xerr=[[c['mean'] - c['low']],
                                                [c['high'] - c['mean']]],
                            fmt='o', color=color, capsize=4,
                            lw=2 if c.get('primary') else 1)
            else:
                ax.plot(c['mean'], y, 'o', color=color)
            if c.get('note'):
                ax.annotate(c['note'], (1.02, y),
                            xycoords=('axes fraction', 'data'),
                            va='center', fontsize=8, color=color)
        ax.axvline(0, color='black', lw=1, ls=':')
        ax.set_yticks(ys)
        ax.set_yticklabels([c['label'] for c in comparisons], fontsize=8)
        ax.set_ylim(-0.7, len(comparisons) - 0.3)
        ax.set_xlabel('paired difference (variant - reference)')
        ax.set_title('paired differences, 95 % CI (colour: primary; '
                     'grey: exploratory)', fontsize=9)
        ax.grid(alpha=0.3, axis='x')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
