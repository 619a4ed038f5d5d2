"""Pieces of the demo's report: training logs, depth error, tables.

* :func:`read_scalars`: mmengine's ``vis_data/scalars.json`` (one JSON
  object per logged training step) as columns;
* :func:`match_detections` / :func:`depth_errors`: mean absolute depth
  error of detections matched to ground truth (2D IoU >= 0.5, or BEV
  centre distance), in KITTI annotation dicts (``name``, ``bbox``,
  ``location``, ``score``) as ``KittiMetric`` formats them;
* :func:`format_table`: a plain-text or markdown table.
"""
import glob
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    'read_scalars', 'find_scalars', 'train_seconds_per_iter', 'box_iou_2d',
    'match_detections', 'depth_errors', 'format_table', 'fmt'
]


def find_scalars(work_dir: str) -> Optional[str]:
    """The newest ``<work_dir>/<timestamp>/vis_data/scalars.json``."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')),
                   key=os.path.getmtime)
    return paths[-1] if paths else None


def read_scalars(path: str, split: str = 'train') -> Dict[str, np.ndarray]:
    """Columns of mmengine's ``scalars.json``.

    Args:
        path (str): The file (JSON lines).
        split (str): ``'train'`` keeps the lines with a learning rate
            (training steps), ``'all'`` keeps every line.

    Returns:
        dict[str, np.ndarray]: ``step`` and one array per key, NaN where a
        line lacks that key.
    """
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if split == 'train' and 'lr' not in row:
                continue
            rows.append(row)
    keys = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    out = {}
    for key in keys:
        out[key] = np.array([
            float(r[key]) if isinstance(r.get(key), (int, float)) else np.nan
            for r in rows
        ])
    if 'step' not in out:
        out['step'] = np.arange(1, len(rows) + 1, dtype=float)
    return out


def train_seconds_per_iter(scalars: Dict[str, np.ndarray],
                           skip_first: int = 1) -> float:
    """Median of the logged iteration times, skipping the first window(s).

    mmengine logs ``time`` averaged over each logging window; the first one
    holds the start-up (data loader workers, first allocations).
    """
    times = scalars.get('time', np.zeros(0))
    times = times[np.isfinite(times)]
    if times.size > skip_first:
        times = times[skip_first:]
    return float(np.median(times)) if times.size else float('nan')


def box_iou_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of axis-aligned boxes ``(x1, y1, x2, y2)``, shape (A, B)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * \
        np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * \
        np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.)


def match_detections(pred: dict,
                     gt: dict,
                     classes: Sequence[str],
                     criterion: str = 'iou2d',
                     threshold: float = 0.5) -> List[dict]:
    """Greedy one-to-one matching of one frame's detections to its GT.

    Detections are taken by decreasing score; each takes the unmatched GT
    object of the same class with the highest 2D IoU (``criterion='iou2d'``,
    kept if ``>= threshold``) or the nearest bird's-eye-view centre
    (``'bev'``: distance in the camera x-z plane ``<= threshold`` metres).
    GT objects of classes outside ``classes`` (DontCare, Van, ...) are not
    matched.

    Args:
        pred (dict): KITTI annotation dict of the detections (``name``,
            ``bbox`` (M, 4), ``location`` (M, 3), ``score`` (M, )).
        gt (dict): KITTI annotation dict of the GT (``name``, ``bbox``,
            ``location``).
        classes (Sequence[str]): Evaluated class names.
        criterion (str): ``'iou2d'`` or ``'bev'``.
        threshold (float): IoU or distance threshold.

    Returns:
        list[dict]: One dict per match: ``name``, ``z_pred``, ``z_gt``,
        ``score``, ``iou`` (2D) and ``bev_dist``.
    """
    if criterion not in ('iou2d', 'bev'):
        raise ValueError(f"criterion must be 'iou2d' or 'bev', got "
                         f'{criterion!r}')
    p_names = np.asarray(pred.get('name', []))
    g_names = np.asarray(gt.get('name', []))
    if p_names.size == 0 or g_names.size == 0:
        return []
    p_box = np.asarray(pred['bbox'], dtype=np.float64).reshape(-1, 4)
    g_box = np.asarray(gt['bbox'], dtype=np.float64).reshape(-1, 4)
    p_loc = np.asarray(pred['location'], dtype=np.float64).reshape(-1, 3)
    g_loc = np.asarray(gt['location'], dtype=np.float64).reshape(-1, 3)
    scores = np.asarray(pred.get('score', np.ones(len(p_names))),
                        dtype=np.float64).reshape(-1)
    iou = box_iou_2d(p_box, g_box)
    dist = np.linalg.norm(p_loc[:, None, [0, 2]] - g_loc[None, :, [0, 2]],
                          axis=-1)
    same = p_names[:, None] == g_names[None, :]
    valid_gt = np.isin(g_names, list(classes))
    free = valid_gt.copy()
    matches = []
    for i in np.argsort(-scores, kind='stable'):
        ok = free & same[i]
        if criterion == 'iou2d':
            ok &= iou[i] >= threshold
            if not ok.any():
                continue
            j = int(np.argmax(np.where(ok, iou[i], -1.)))
        else:
            ok &= dist[i] <= threshold
            if not ok.any():
                continue
            j = int(np.argmin(np.where(ok, dist[i], np.inf)))
        free[j] = False
        matches.append(dict(name=str(p_names[i]), z_pred=float(p_loc[i, 2]),
                            z_gt=float(g_loc[j, 2]), score=float(scores[i]),
                            iou=float(iou[i, j]),
                            bev_dist=float(dist[i, j])))
    return matches


def depth_errors(frames: Sequence[List[dict]],
                 cls: Optional[str] = None) -> Dict[str, float]:
    """Depth error statistics of matched detections.

    Args:
        frames (Sequence[list[dict]]): :func:`match_detections` per frame.
        cls (str, optional): Only this class.

    Returns:
        dict: ``num_matched``, ``mae`` (mean |z_pred - z_gt|, metres),
        ``median``, ``rel`` (mean |dz| / z_gt); NaN without matches.
    """
    dz, z = [], []
    for matches in frames:
        for m in matches:
            if cls is not None and m['name'] != cls:
                continue
            dz.append(abs(m['z_pred'] - m['z_gt']))
            z.append(m['z_gt'])
    if not dz:
        return dict(num_matched=0, mae=float('nan'), median=float('nan'),
                    rel=float('nan'))
    dz, z = np.asarray(dz), np.asarray(z)
    return dict(num_matched=int(dz.size), mae=float(dz.mean()),
                median=float(np.median(dz)),
                rel=float(np.mean(dz / np.maximum(z, 1e-6))))


def fmt(value, digits: int = 2) -> str:
    """A number for a table: '-' for None/NaN, fixed digits otherwise."""
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return '-'
    return f'{value:.{digits}f}'


def format_table(header: Sequence[str],
                 rows: Sequence[Sequence],
                 markdown: bool = False,
                 digits: int = 2) -> str:
    """A table with aligned columns (first column left, others right).

    Args:
        header (Sequence[str]): Column titles.
        rows (Sequence[Sequence]): Cells; numbers go through :func:`fmt`.
        markdown (bool): GitHub markdown instead of plain text.
        digits (int): Decimals of floats.

    Returns:
        str: The table, lines joined by newlines (no trailing newline).
    """
    cells = [[str(h) for h in header]]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f'row {row!r} has {len(row)} cells, the header '
                             f'{len(header)}')
        cells.append([fmt(c, digits) for c in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row):
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:])
        ]
        return ('| ' + ' | '.join(parts) + ' |') if markdown else \
            '  '.join(parts)

    out = [line(cells[0])]
    if markdown:
        out.append('|' + '|'.join(
            [':' + '-' * (widths[0] + 1)] +
            ['-' * (w + 1) + ':' for w in widths[1:]]) + '|')
    else:
        out.append('  '.join('-' * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return '\n'.join(out)
