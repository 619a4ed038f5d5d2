"""How depth-discriminative are a detector's object descriptors?

Object descriptors are read exactly as in training
(:func:`ddml.models.descriptors.collect_object_descriptors`: the ``k x k``
average of one feature map at each ground-truth object's projected 3D
centre). Over a dataset, every pair of objects ``(i, j)`` gives a descriptor
distance ``e_ij = ||f_i - f_j||`` and a depth distance ``d_ij = |z_i - z_j|``.
This module reports

* the Spearman rank correlation between ``e`` and ``d`` over all pairs (1:
  descriptors order pairs exactly as depth does; 0: no relation);
* the fraction of pairs of the quasi-isometric neighbourhood
  ``P = {0 < d_ij <= eps}`` that satisfy ``d / K - B <= e <= K d + B``
  (the constraint of DDML's loss), and the fractions above / below;
* how well depth can be read from a descriptor by a linear map
  (:func:`depth_probe`: cross-validated ridge regression; the error says
  how much depth the descriptor carries, whatever its pair distances);
* a 2-D PCA projection of the descriptors;
* how much of the ``k x k`` pooling window lies on the object itself
  (:func:`window_coverage`, :func:`window_coverage_of_infos`: geometry
  only, no model).

The statistics are plain numpy (:func:`pair_statistics`, :func:`pca_2d`);
:func:`descriptor_settings` reads the descriptor options of a config.
"""
import math
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from ..models.defaults import (DESCRIPTOR_POOL, FEATURE_LEVEL, MAX_DEPTH,
                               MIN_DEPTH, QI_B, QI_EPS, QI_K)

__all__ = [
    'PairDistances', 'pair_distances', 'pair_statistics', 'depth_probe',
    'pca_2d',
    'descriptor_settings', 'descriptor_report', 'window_coverage',
    'window_coverage_of_infos', 'DEFAULT_K', 'DEFAULT_B', 'DEFAULT_EPS'
]

#: The quasi-isometry constants used when a config has no QI loss.
DEFAULT_K, DEFAULT_B, DEFAULT_EPS = QI_K, QI_B, QI_EPS


class PairDistances(NamedTuple):
    """Distances of object pairs ``i < j``.

    Attributes:
        depth (np.ndarray): ``|z_i - z_j|`` in metres, shape (P, ).
        descriptor (np.ndarray): ``||f_i - f_j||``, shape (P, ).
    """
    depth: np.ndarray
    descriptor: np.ndarray


def pair_distances(descriptors: np.ndarray,
                   depths: np.ndarray,
                   max_pairs: Optional[int] = None,
                   seed: int = 0) -> PairDistances:
    """Depth and descriptor distances of all pairs ``i < j``.

    Args:
        descriptors (np.ndarray): Shape (N, C).
        depths (np.ndarray): Shape (N, ), metres.
        max_pairs (int, optional): Keep a uniform random subset of this many
            pairs (reproducible through ``seed``) when there are more.
        seed (int): Seed of the subset. Defaults to 0.

    Returns:
        :obj:`PairDistances`: float64 arrays of equal length.
    """
    feats = np.asarray(descriptors, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64).reshape(-1)
    if feats.ndim != 2 or feats.shape[0] != depths.shape[0]:
        raise ValueError(f'descriptors {feats.shape} and depths '
                         f'{depths.shape} must be (N, C) and (N, )')
    rows, cols = np.triu_indices(depths.shape[0], k=1)
    if max_pairs is not None and rows.shape[0] > max_pairs:
        pick = np.random.default_rng(seed).choice(
            rows.shape[0], size=int(max_pairs), replace=False)
        pick.sort()
        rows, cols = rows[pick], cols[pick]
    desc = np.linalg.norm(feats[rows] - feats[cols], axis=1)
    return PairDistances(np.abs(depths[rows] - depths[cols]), desc)


def pair_statistics(descriptors: np.ndarray,
                    depths: np.ndarray,
                    K: float = DEFAULT_K,
                    B: float = DEFAULT_B,
                    eps: float = DEFAULT_EPS,
                    max_pairs: Optional[int] = 500_000,
                    seed: int = 0) -> Dict[str, float]:
    """Spearman correlation and (K, B) bound fractions of object pairs.

    Args:
        descriptors (np.ndarray): Shape (N, C).
        depths (np.ndarray): Shape (N, ), metres.
        K (float): Multiplicative constant. Defaults to 1.5.
        B (float): Additive constant (descriptor units). Defaults to 0.5.
        eps (float): Neighbourhood radius in metres: the bounds are checked
            on pairs with ``0 < d <= eps``. Defaults to 10.
        max_pairs (int, optional): Subsample pairs beyond this many.
        seed (int): Seed of the subsample.

    Returns:
        dict: ``num_objects``, ``num_pairs``, ``spearman`` (all pairs; NaN
        with fewer than 3 pairs or constant distances), ``num_pairs_eps``
        (pairs in the neighbourhood), ``frac_inside``, ``frac_above``
        (``e > K d + B``), ``frac_below`` (``e < d / K - B``) over the
        neighbourhood (NaN when it is empty), ``mean_desc_dist`` and
        ``mean_depth_dist`` over all pairs.
    """
    n = int(np.asarray(depths).reshape(-1).shape[0])
    pairs = pair_distances(descriptors, depths, max_pairs, seed)
    out: Dict[str, float] = dict(
        num_objects=n, num_pairs=int(pairs.depth.shape[0]),
        spearman=float('nan'), num_pairs_eps=0,
        frac_inside=float('nan'), frac_above=float('nan'),
        frac_below=float('nan'), mean_desc_dist=float('nan'),
        mean_depth_dist=float('nan'))
    if pairs.depth.shape[0] == 0:
        return out
    out['mean_desc_dist'] = float(pairs.descriptor.mean())
    out['mean_depth_dist'] = float(pairs.depth.mean())
    if pairs.depth.shape[0] >= 3 and np.ptp(pairs.depth) > 0 and \
            np.ptp(pairs.descriptor) > 0:
        from scipy.stats import spearmanr
        out['spearman'] = float(spearmanr(pairs.depth, pairs.descriptor)[0])
    near = (pairs.depth > 0) & (pairs.depth <= eps)
    out['num_pairs_eps'] = int(near.sum())
    if near.any():
        d, e = pairs.depth[near], pairs.descriptor[near]
        above = e > K * d + B
        below = e < d / K - B
        out['frac_above'] = float(above.mean())
        out['frac_below'] = float(below.mean())
        out['frac_inside'] = float((~above & ~below).mean())
    return out


def depth_probe(descriptors: np.ndarray,
                depths: np.ndarray,
                folds: int = 5,
                ridge: float = 1.0) -> Dict[str, float]:
    """How well a linear map reads depth from the descriptors.

    Ridge regression ``z ~ w . f + b`` on standardised descriptors, fitted
    on ``folds - 1`` contiguous blocks of the objects and scored on the
    held-out block (the objects come image by image, so a block holds
    whole images but for its edges).

    Args:
        descriptors (np.ndarray): Shape (N, C).
        depths (np.ndarray): Shape (N, ), metres.
        folds (int): Cross-validation blocks. Defaults to 5.
        ridge (float): L2 penalty on the weights of the standardised
            features. Defaults to 1.

    Returns:
        dict: ``probe_mae`` (mean absolute depth error in metres of the
        held-out predictions) and ``probe_r2`` (their coefficient of
        determination); NaN with fewer than ``2 * folds`` objects.
    """
    x = np.asarray(descriptors, dtype=np.float64)
    z = np.asarray(depths, dtype=np.float64).reshape(-1)
    n = z.shape[0]
    if n < 2 * folds:
        return dict(probe_mae=float('nan'), probe_r2=float('nan'))
    pred = np.empty(n)
    for block in np.array_split(np.arange(n), folds):
        train = np.ones(n, dtype=bool)
        train[block] = False
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
        xt = (x[train] - mu) / sd
        zt = z[train] - z[train].mean()
        w = np.linalg.solve(xt.T @ xt + ridge * np.eye(x.shape[1]), xt.T @ zt)
        pred[block] = (x[block] - mu) / sd @ w + z[train].mean()
    resid = z - pred
    return dict(probe_mae=float(np.abs(resid).mean()),
                probe_r2=float(1 - (resid**2).sum() /
                               ((z - z.mean())**2).sum()))


def pca_2d(descriptors: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Project descriptors on their first two principal components.

    Args:
        descriptors (np.ndarray): Shape (N, C).

    Returns:
        tuple: Projection (N, 2) (zero-padded when fewer than two components
        exist) and the explained variance ratio of the two components (2, ).
    """
    feats = np.asarray(descriptors, dtype=np.float64)
    n = feats.shape[0]
    proj = np.zeros((n, 2))
    ratio = np.zeros(2)
    if n < 2:
        return proj, ratio
    centred = feats - feats.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    # fix the sign so that the output is deterministic
    signs = np.sign(vt[:k, np.argmax(np.abs(vt[:k]), axis=1)].diagonal())
    signs[signs == 0] = 1
    proj[:, :k] = centred @ (vt[:k].T * signs)
    var = s**2
    if var.sum() > 0:
        ratio[:k] = var[:k] / var.sum()
    return proj, ratio


def descriptor_settings(model_cfg) -> Dict:
    """Descriptor options of a model config.

    A ``DepthDiscriminativeDetector`` config gives its own
    ``feature_level``, ``descriptor_pool``, depth range, ignored classes
    and, when it has a ``QuasiIsometricLoss``, K/B/eps; a plain detector
    gets the wrapper's defaults (:mod:`ddml.models.defaults`).

    Args:
        model_cfg (dict-like): ``cfg.model``.

    Returns:
        dict: ``wrapper`` (bool), ``feature_level``, ``descriptor_pool``,
        ``min_depth``, ``max_depth``, ``ignore_classes``, ``K``, ``B``,
        ``eps``.
    """
    out = dict(wrapper=False, feature_level=FEATURE_LEVEL,
               descriptor_pool=DESCRIPTOR_POOL, min_depth=MIN_DEPTH,
               max_depth=MAX_DEPTH, ignore_classes=(),
               K=DEFAULT_K, B=DEFAULT_B, eps=DEFAULT_EPS)
    if model_cfg.get('type', None) == 'DepthDiscriminativeDetector':
        out['wrapper'] = True
        for key in ('feature_level', 'descriptor_pool', 'min_depth',
                    'max_depth', 'ignore_classes'):
            if model_cfg.get(key, None) is not None:
                out[key] = model_cfg[key]
        qi = model_cfg.get('qi_loss', None)
        if isinstance(qi, dict):
            for key in ('K', 'B', 'eps'):
                if qi.get(key, None) is not None:
                    out[key] = float(qi[key])
    out['ignore_classes'] = tuple(out['ignore_classes'])
    return out


def descriptor_report(descriptors: np.ndarray,
                      depths: np.ndarray,
                      out_dir: str,
                      name: str,
                      K: float = DEFAULT_K,
                      B: float = DEFAULT_B,
                      eps: float = DEFAULT_EPS,
                      title: str = '') -> Dict:
    """Statistics and the two figures of one model's descriptors.

    Writes ``<out_dir>/<name>_pairs.png`` (descriptor distance against
    depth distance with the bounds) and ``<out_dir>/<name>_pca.png``.

    Returns:
        dict: :func:`pair_statistics` and :func:`depth_probe` plus
        ``pca_ratio`` (list) and ``figures`` (the two paths).
    """
    import os.path as osp

    from .plots import plot_pair_distances, plot_pca
    stats = pair_statistics(descriptors, depths, K, B, eps)
    stats.update(depth_probe(descriptors, depths))
    pairs = pair_distances(descriptors, depths, max_pairs=200_000)
    title = title or name
    f_pairs = plot_pair_distances(
        pairs.depth, pairs.descriptor, osp.join(out_dir, f'{name}_pairs.png'),
        K=K, B=B, eps=eps, stats=stats,
        title=f'{title}: descriptor vs depth distance')
    proj, ratio = pca_2d(descriptors)
    f_pca = plot_pca(proj, depths, osp.join(out_dir, f'{name}_pca.png'),
                     ratio=ratio,
                     title=f'{title}: object descriptors (PCA)')
    stats = dict(stats)
    stats['pca_ratio'] = [float(r) for r in ratio]
    stats['figures'] = [f_pairs, f_pca]
    return stats


def window_coverage(boxes: np.ndarray, centers: np.ndarray,
                    stride: Tuple[float, float],
                    kernel_size: int = DESCRIPTOR_POOL,
                    feat_hw: Optional[Tuple[int, int]] = None
                    ) -> np.ndarray:
    """Share of each object's ``k x k`` descriptor window on the object.

    The descriptor is the ``k x k`` average of the feature map around the
    integer cell of the projected 3D centre, the cell that
    :func:`ddml.models.descriptors.centers_to_cells` gives the model; a cell
    counts as on the object when its centre lies inside the object's 2D box.

    Args:
        boxes (np.ndarray): 2D boxes (x1, y1, x2, y2) in input pixels,
            shape (N, 4).
        centers (np.ndarray): Projected 3D centres (x, y) in input pixels,
            shape (N, 2).
        stride (tuple[float, float]): Stride (y, x) of the feature map.
        kernel_size (int): Odd window size ``k``. Defaults to
            :data:`~ddml.models.defaults.DESCRIPTOR_POOL`.
        feat_hw (tuple[int, int], optional): Height and width of the
            feature map: a centre off it takes the nearest cell on it, as in
            the model. None: a map that holds every centre.

    Returns:
        np.ndarray: Per object, the fraction of the ``k * k`` cells on the
        object, shape (N, ).
    """
    import torch

    from ..models.descriptors import centers_to_cells
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if feat_hw is None:
        far = np.nanmax(centers, axis=0, initial=0.0)
        feat_hw = (int(far[1] // stride[0]) + 1, int(far[0] // stride[1]) + 1)
    rows, cols, _ = centers_to_cells(torch.from_numpy(centers), stride,
                                     feat_hw)
    radius = int(kernel_size) // 2
    offsets = np.arange(-radius, radius + 1)
    cols = cols.numpy()[:, None] + offsets  # (N, k)
    rows = rows.numpy()[:, None] + offsets
    xs, ys = (cols + 0.5) * stride[1], (rows + 0.5) * stride[0]
    in_x = (xs >= boxes[:, 0:1]) & (xs <= boxes[:, 2:3])
    in_y = (ys >= boxes[:, 1:2]) & (ys <= boxes[:, 3:4])
    return (in_y[:, :, None] & in_x[:, None, :]).mean(axis=(1, 2))


def window_coverage_of_infos(info_path: str,
                             input_wh: Tuple[int, int],
                             stride: float = 4.0,
                             kernel_size: int = DESCRIPTOR_POOL,
                             camera: str = 'CAM2',
                             depth_edges: Tuple[float, ...] = (
                                 MIN_DEPTH, 10.0, 20.0, 30.0, MAX_DEPTH)
                             ) -> Dict[str, Dict[str, float]]:
    """:func:`window_coverage` of the objects of an mmdet3d info file.

    Each image is resized to ``input_wh`` (as the demo's ``AffineResize``
    does; boxes and centres scale with it); objects within
    ``[MIN_DEPTH, MAX_DEPTH]`` (those that get a descriptor) count.

    Args:
        info_path (str): A ``*_infos_*.pkl`` with ``cam_instances``.
        input_wh (tuple[int, int]): Network input width and height.
        stride (float): Stride of the descriptor map. Defaults to 4.
        kernel_size (int): Window size. Defaults to ``DESCRIPTOR_POOL``.
        camera (str): Camera key. Defaults to 'CAM2'.
        depth_edges (tuple[float]): Depth bins in metres.

    Returns:
        dict: ``'<lo>-<hi> m'`` and ``'all'`` -> ``{'objects': n,
        'coverage': mean share}``.
    """
    import pickle
    with open(info_path, 'rb') as f:
        infos = pickle.load(f)
    boxes, centers, depths = [], [], []
    for info in infos['data_list']:
        image = info['images'][camera]
        sx, sy = input_wh[0] / image['width'], input_wh[1] / image['height']
        for inst in info.get('cam_instances', {}).get(camera, []):
            if not MIN_DEPTH <= inst['depth'] <= MAX_DEPTH:
                continue
            x1, y1, x2, y2 = inst['bbox']
            boxes.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
            centers.append([inst['center_2d'][0] * sx,
                            inst['center_2d'][1] * sy])
            depths.append(inst['depth'])
    feat_hw = (math.ceil(input_wh[1] / stride),
               math.ceil(input_wh[0] / stride))
    cover = window_coverage(np.array(boxes), np.array(centers),
                            (stride, stride), kernel_size, feat_hw)
    depths = np.asarray(depths)
    out = {}
    for lo, hi in zip(depth_edges[:-1], depth_edges[1:]):
        sel = (depths >= lo) & (depths < hi)
        if sel.any():
            out[f'{lo:g}-{hi:g} m'] = dict(
                objects=int(sel.sum()), coverage=float(cover[sel].mean()))
    out['all'] = dict(objects=int(cover.size), coverage=float(cover.mean())
                      if cover.size else float('nan'))
    return out
