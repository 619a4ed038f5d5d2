"""DDML's object depth map targets: ddml against the release's own code.

The release (mingyuShin/DDML-M3DOD) builds them in three steps, all run
here from its tree
(``ddml.testing.reference.release_object_depth_targets``):
``make_obj_depth.py`` paints the *label* 2D boxes at full image resolution,
far to near (``box[round(y1):round(y2), round(x1):round(x2)] = z``), for
objects with ``z >= 2`` m (no upper cap) of known KITTI difficulty, every
KITTI class in its 3-class setting (Cars in its Car setting); its dataset
warps the map to 1280x384 (nearest); its loss resizes it to the 96x320
feature map (bilinear, ``align_corners=True``) and trains where it is not
0. ddml (``ObjectDepthMapHead.get_targets``) paints the boxes mmdet3d's
pipeline carries (the projected 3D boxes, clipped), of the dataset's
classes, 2-65 m, each cell taking the nearest box that covers its centre.

So the two differ by design at box edges (bilinear blends an edge cell
with the background or a farther box; ddml's cell is in or out), in which
boxes (label vs projected), classes and range are painted. Not by design:
ddml paints ``gt_instances_3d.depths``, mmdet3d's projected depth
``z + P2[2, 3]``, the release the label's ``z``: +2.7 mm on KITTI's
camera. These tests measure all of it on the same frames.
"""
from pathlib import Path
from types import MethodType, SimpleNamespace
from typing import Dict, Optional, Sequence

import numpy as np
import pytest
import torch

from ddml.data_tools.synthetic_kitti import KITTI_P2, make_demo_dataset
from ddml.models.targets import paint_object_depth_map
from ddml.testing.reference import (DDML_CLASSES, RELEASE_FEAT_HW,
                                    RELEASE_RESOLUTION, kitti_label,
                                    mmdet3d_kitti_dataset,
                                    release_object_depth_targets,
                                    write_kitti_root)

#: Depth differences below this (m) count as equal in the measures: they
#: leave out the 2.7 mm of ``P2[2, 3]``, which :func:`_measure` reports
#: on its own.
SAME = 0.01


def _measure(release: np.ndarray, ours: np.ndarray) -> Dict[str, float]:
    """How two stacks of depth maps (N, H, W) differ.

    Returns:
        dict: ``differ_any`` the share of all cells that differ at all
        (float32 precision); ``differ`` the share of all cells more than
        :data:`SAME` apart; ``only_release`` / ``only_ours`` the cells
        only one side paints; ``both`` the cells both paint; ``mad_both``
        the mean absolute difference on those (m); ``offset`` the median
        of ours minus the release's on them (m); ``same_both`` the share
        of them within :data:`SAME`.
    """
    release, ours = np.asarray(release, np.float64), np.asarray(ours)
    painted_r, painted_o = release > 0, ours > 0
    both = painted_r & painted_o
    gap = ours - release
    return dict(
        differ_any=float(
            (~np.isclose(ours, release, rtol=1e-6, atol=1e-6)).mean()),
        differ=float((np.abs(gap) > SAME).mean()),
        only_release=int((painted_r & ~painted_o).sum()),
        only_ours=int((painted_o & ~painted_r).sum()),
        both=int(both.sum()),
        mad_both=float(np.abs(gap[both]).mean()),
        offset=float(np.median(gap[both])),
        same_both=float((np.abs(gap[both]) <= SAME).mean()))


def _ours(root: Path, num: int, classes: Sequence[str],
          min_difficulty: Optional[str] = None,
          split: str = 'val') -> np.ndarray:
    """``ObjectDepthMapHead``'s targets (2-65 m) of the frames of a split
    through configs/monodle's pipeline (no augmentation), with the
    wrapper's sample rule ``min_difficulty`` applied as
    ``DepthDiscriminativeDetector.auxiliary_ground_truth`` applies it
    (``'hard'`` in the ``ddml-release_*`` configs: objects of no KITTI
    difficulty are not painted, the release's rule)."""
    from mmdet3d.registry import MODELS

    from ddml.models.detectors.depth_discriminative import \
        DepthDiscriminativeDetector
    head = MODELS.build(dict(type='ObjectDepthMapHead', in_channels=1))
    data = mmdet3d_kitti_dataset(root, classes=classes, split=split,
                                 release_fields=True)
    assert len(data) == num
    samples = [data[i]['data_samples'] for i in range(num)]
    rules = SimpleNamespace(min_difficulty=min_difficulty,
                            skip_aux_on_affine_aug=False)
    rules.kept_objects = MethodType(DepthDiscriminativeDetector.kept_objects,
                                    rules)
    samples, _ = DepthDiscriminativeDetector.auxiliary_ground_truth(
        rules, samples)
    return head.get_targets(samples, RELEASE_FEAT_HW, (4., 4.)).numpy()


#: Label boxes (x1, y1, x2, y2) on a 1280x384 image and their depths:
#: apart, overlapping (nearer on top), at odd positions, thin.
BOXES = [((100.2, 150.7, 260.9, 250.3), 12.0),
         ((220.0, 120.0, 420.0, 300.0), 25.5),
         ((600.4, 180.6, 641.7, 221.2), 40.0),
         ((700.0, 100.0, 1000.0, 383.0), 8.0),
         ((900.6, 160.2, 1270.3, 230.8), 55.0),
         ((30.5, 10.5, 36.5, 60.5), 3.0)]


def _box_root(root: Path, boxes) -> Path:
    """A 1280x384 frame (the release's warp is then the identity) whose
    Cars have the given label boxes and depths (known difficulty)."""
    objects = [kitti_label('Car', (0., 1.65, z), (3.9, 1.5, 1.6), 0.,
                           image_size=RELEASE_RESOLUTION, bbox=box)
               for box, z in boxes]
    return write_kitti_root(root, [objects], KITTI_P2, RELEASE_RESOLUTION,
                            convert=False)


def _edge_cells(depth_map: np.ndarray) -> np.ndarray:
    """Cells with a 3x3 neighbour of another value, or on the map's
    border: box edges (a box's edge may lie on the image's)."""
    padded = np.pad(depth_map, 1, constant_values=-1.)
    edge = np.zeros(depth_map.shape, bool)
    h, w = depth_map.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            edge |= padded[dy:dy + h, dx:dx + w] != depth_map
    return edge


def test_same_boxes_differ_only_at_box_edges(tmp_path, ddml_release):
    """The two rules on the same label boxes and depths (ddml's
    ``paint_object_depth_map`` given the label boxes): equal on every cell
    away from a box edge, nearest box on top on both sides; they differ
    only on edge cells (2,270 of the 30,720 here). Measured: 168 cells
    differ, all on edges, by 14.2 m on average: 65 where the release
    blends an edge cell with the background or a farther box, 10 it
    paints and ddml does not, 93 ddml paints and the release does not
    (its ``align_corners=True`` grid samples pixel ``r * 383 / 95``: the
    last row reads pixel row 383, which ``box[y1:y2]`` leaves out for a
    box ending there)."""
    root = _box_root(tmp_path / 'kitti', BOXES)
    release = release_object_depth_targets(root, ['000000'],
                                           tmp_path / 'work')[0]
    ours = paint_object_depth_map(
        torch.tensor([b for b, _ in BOXES]),
        torch.tensor([z for _, z in BOXES]), RELEASE_FEAT_HW, 4.).numpy()
    edge = _edge_cells(ours)
    np.testing.assert_allclose(release[~edge], ours[~edge], rtol=1e-6)
    differ = ~np.isclose(release, ours, rtol=1e-6)
    assert not (differ & ~edge).any()
    assert int(edge.sum()) == 2270
    assert int(differ.sum()) == 168
    assert float(np.abs(release - ours)[differ].mean()) == pytest.approx(
        14.217, abs=0.001)
    assert int(((release > 0) & (ours == 0)).sum()) == 10
    assert int(((release == 0) & (ours > 0)).sum()) == 93
    assert int((differ & (release > 0) & (ours > 0)).sum()) == 65
    # every box shows its depth on both sides
    for _, z in BOXES:
        assert (ours == z).any() and np.isclose(release, z).any()


def test_box_over_the_whole_image_is_equal(tmp_path, ddml_release):
    """One box over the whole image: no edge, so the two rules coincide
    on every cell (also through ddml's whole path: converter, pipeline
    and head, on a camera without ``P2[2, 3]``)."""
    camera = KITTI_P2.copy()
    camera[2, 3] = 0.
    z = 4.0
    car = kitti_label('Car', (0., 1.65, z), (3.9, 1.5, 1.6), 0., P2=camera,
                      image_size=RELEASE_RESOLUTION,
                      bbox=(0., 0., 1280., 384.))
    root = write_kitti_root(tmp_path / 'kitti', [[car]], camera,
                            RELEASE_RESOLUTION, convert=False)
    release = release_object_depth_targets(root, ['000000'],
                                           tmp_path / 'work')[0]
    ours = paint_object_depth_map(torch.tensor([[0., 0., 1280., 384.]]),
                                  torch.tensor([z]), RELEASE_FEAT_HW,
                                  4.).numpy()
    np.testing.assert_array_equal(release, np.full(RELEASE_FEAT_HW, z))
    np.testing.assert_array_equal(ours, release)


def _compare_frames(root: Path, ids: Sequence[str], work: Path,
                    split: str = 'val') -> Dict[str, Dict[str, float]]:
    """:func:`_measure` of four settings: the release's 3-class setting
    (every KITTI class painted) against ddml's 3 classes, and Cars against
    Cars, each with ddml painting every object (``ddml_*`` configs) or
    only those of a KITTI difficulty (``ddml-release_*`` configs)."""
    out = {}
    for setting, all_class, classes in (('3class', True, DDML_CLASSES),
                                        ('car', False, ('Car', ))):
        release = release_object_depth_targets(root, ids, work / setting,
                                               all_class=all_class)
        for rule in (None, 'hard'):
            ours = _ours(root, len(ids), classes, rule, split)
            out[f'{setting}-{rule or "every"}'] = _measure(release, ours)
    return out


def _assert_measures(got: Dict[str, Dict[str, float]],
                     expected: Dict[str, tuple]) -> None:
    """``got`` against ``(differ_any, differ, only_release, only_ours,
    both, mad_both)`` per setting (shares to 5e-4, cells exactly, the mean
    difference to 1 %); every cell both paint is ``P2[2, 3]`` deeper
    here (median), and at least 80 % of them agree within 1 cm."""
    assert set(got) == set(expected)
    for setting, values in expected.items():
        m = got[setting]
        differ_any, differ, only_release, only_ours, both, mad = values
        assert m['differ_any'] == pytest.approx(differ_any, abs=5e-4), setting
        assert m['differ'] == pytest.approx(differ, abs=5e-4), setting
        assert (m['only_release'], m['only_ours'], m['both']) == (
            only_release, only_ours, both), setting
        assert m['mad_both'] == pytest.approx(mad, rel=0.01), setting
        assert m['offset'] == pytest.approx(KITTI_P2[2, 3], abs=2e-6)
        assert m['same_both'] > 0.8


def test_real_kitti_frames(real_kitti_root, tmp_path, ddml_release):
    """KITTI frames 000000, 000007 and 000008 (``../shared/data``; 1
    Pedestrian; 3 Cars and a Cyclist; 6 Cars, two of them, at 3.7 and
    6.2 m, of no KITTI difficulty): the release's label boxes against
    ddml's projected boxes, over the 92,160 cells of the three maps.

    Measured (share of cells that differ at all / by more than 1 cm;
    cells only the release paints; only ddml; both; mean absolute
    difference where both paint, m):

    ======================  ======  ======  ====  =====  ====  =====
    setting                 any     > 1 cm  rel.  ddml   both  mean
    ======================  ======  ======  ====  =====  ====  =====
    3 classes, every object 15.0 %  9.5 %   29    7,829  6,009 0.77
    3 classes, known diff.  6.7 %   0.30 %  80    173    5,958 0.071
    Car, every object       13.7 %  9.4 %   29    7,743  4,821 0.94
    Car, known difficulty   5.4 %   0.20 %  80    87     4,770 0.073
    ======================  ======  ======  ====  =====  ====  =====

    With every object ddml paints the two near Cars of no difficulty,
    which the release leaves out; with ``min_difficulty='hard'`` (the
    ``ddml-release_*`` configs) the rest is the rasterisation, label vs
    projected boxes and the 2.7 mm of ``P2[2, 3]`` on every cell.
    """
    ids = ['000000', '000007', '000008']
    got = _compare_frames(real_kitti_root, ids, tmp_path)
    _assert_measures(got, {
        '3class-every': (0.1505, 0.0951, 29, 7829, 6009, 0.768),
        '3class-hard': (0.0674, 0.0030, 80, 173, 5958, 0.0705),
        'car-every': (0.1366, 0.0940, 29, 7743, 4821, 0.942),
        'car-hard': (0.0536, 0.0020, 80, 87, 4770, 0.0725),
    })


def test_synthetic_frames(tmp_path, ddml_release):
    """Four frames of the synthetic KITTI renderer
    (``tools/make_demo_dataset.py``, general layout: three classes at 4-60
    m, seed 3, 30,720 cells each), whose label boxes are the projected
    boxes clipped to the image: what differs is the rasterisation (the
    release's bilinear resize paints a rim of blended cells around every
    box), ``P2[2, 3]`` and the objects of no difficulty. Measured:

    ======================  ======  ======  ====  ====  ======  =====
    setting                 any     > 1 cm  rel.  ddml  both    mean
    ======================  ======  ======  ====  ====  ======  =====
    3 classes, every object 17.1 %  0.80 %  550   102   20,331  0.166
    3 classes, known diff.  17.0 %  0.74 %  550   27    20,331  0.166
    Car, every object       14.2 %  0.60 %  382   75    17,006  0.162
    Car, known difficulty   14.2 %  0.54 %  382   0     17,006  0.162
    ======================  ======  ======  ====  ====  ======  =====

    (A change of the renderer changes these figures.)
    """
    root = tmp_path / 'synthetic'
    make_demo_dataset(root, 0, 4, seed=3, workers=1, progress=False)
    ids = [f'{i:06d}' for i in range(4)]
    got = _compare_frames(root, ids, tmp_path)
    _assert_measures(got, {
        '3class-every': (0.1708, 0.0080, 550, 102, 20331, 0.1662),
        '3class-hard': (0.1702, 0.0074, 550, 27, 20331, 0.1662),
        'car-every': (0.1421, 0.0060, 382, 75, 17006, 0.1623),
        'car-hard': (0.1415, 0.0054, 382, 0, 17006, 0.1623),
    })
