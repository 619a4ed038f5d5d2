"""MonoDLE's training targets: ddml against the release's own encoding.

The same KITTI frames (label and calibration files) go through

* the release: ``KITTI_Dataset.__getitem__`` of xinzhuma/monodle
  (``lib/datasets/kitti/kitti_dataset.py``, split ``val``, i.e. no flip and
  no crop), with ``bbox2d_type='proj'`` (2D targets from the projected 3D
  box, as ``MonoDLEHead``'s default) or its yaml's ``'anno'`` (the
  annotated box);
* ddml: its converter's infos, mmdet3d's ``KittiDataset`` with
  configs/monodle's pipeline (``AffineResize`` to 1280x384, stride 4) and
  ``MonoDLEHead.get_targets``; for ``'anno'`` with
  ``bbox2d_source='annotated'``, ``skip_unknown_difficulty=True`` and the
  transforms that carry the annotated boxes and the difficulties.

and every target is compared: heatmap (centres and Gaussian radii), the
objects kept, 2D size and offset, 3D offset, depth, 3D size, heading bin
and residual. The releases number the classes Pedestrian, Car, Cyclist,
mmdet3d Pedestrian, Cyclist, Car; the release's sizes are ``(h, w, l)``,
ddml's ``(l, h, w)``.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch

from ddml.data_tools.synthetic_kitti import KITTI_P2
from ddml.models.heads.monodle_head import KITTI_MEAN_SIZES
from ddml.testing.reference import (CLASS_SWAP, GROUND_Y, RELEASE_DOWNSAMPLE,
                                    RELEASE_FEAT_HW, RELEASE_RESOLUTION,
                                    kitti_label, mmdet3d_kitti_dataset,
                                    monodle_head_targets, parity_monodle_head,
                                    parity_scene, release_dataset,
                                    release_targets, write_kitti_root)


@pytest.fixture(autouse=True)
def _needs_the_release(monodle_release) -> None:
    """Every test here runs MonoDLE's release (skips without it)."""


#: KITTI's P2 without its ``P2[2, 3]`` (2.7 mm along the optical axis).
P2_NO_Z_OFFSET = KITTI_P2.copy()
P2_NO_Z_OFFSET[2, 3] = 0.

#: (l, h, w) -> the release's (h, w, l).
LHW_TO_HWL = [1, 2, 0]
#: The release's (h, w, l) -> (l, h, w).
HWL_TO_LHW = [2, 0, 1]


@pytest.fixture(scope='module')
def scenes(tmp_path_factory, monodle_release) -> Dict[str, Path]:
    """The scene written with KITTI's P2 and with P2[2, 3] = 0."""
    base = tmp_path_factory.mktemp('parity_targets')
    return dict(
        kitti=write_kitti_root(base / 'kitti', [parity_scene()], KITTI_P2),
        no_z_offset=write_kitti_root(base / 'no_z', [parity_scene()],
                                     P2_NO_Z_OFFSET))


def _cells_to_pixels(points: np.ndarray) -> np.ndarray:
    """Feature cells -> pixels of the 1242x375 image (the inverse of the
    affine map of both sides: scale 1280 / 1242, centres aligned)."""
    scale = RELEASE_RESOLUTION[0] / 1242.
    centre_in = np.array(RELEASE_RESOLUTION, np.float64) / 2
    centre_img = np.array([1242., 375.]) / 2
    return (np.asarray(points, np.float64) * RELEASE_DOWNSAMPLE -
            centre_in) / scale + centre_img


def _both(root: Path,
          mean_sizes: Optional[Sequence] = None,
          meanshape: bool = False,
          release_rules: bool = False
          ) -> Tuple[Dict[str, np.ndarray], Dict[str, torch.Tensor],
                     Dict[str, np.ndarray]]:
    """(release targets of the kept objects, ddml targets in the same
    order, full release targets).

    With ``release_rules`` the release takes its yaml's 2D boxes
    (``bbox2d_type='anno'``) and ddml the matching options
    (``bbox2d_source='annotated'``, ``skip_unknown_difficulty=True``, the
    pipeline carrying annotated boxes and difficulties); otherwise the
    release takes projected boxes (``'proj'``) and ddml its defaults.
    """
    rel = release_targets(
        release_dataset(root, meanshape=meanshape,
                        bbox2d_type='anno' if release_rules else 'proj'))
    head_options = dict(bbox2d_source='annotated',
                        skip_unknown_difficulty=True) if release_rules else {}
    ours = monodle_head_targets(
        parity_monodle_head(mean_sizes, **head_options), [
            mmdet3d_kitti_dataset(root, release_fields=release_rules)[0]
            ['data_samples']
        ])
    kept = np.flatnonzero(rel['mask_2d'])
    rel_kept = {k: v[kept] for k, v in rel.items()
                if k not in ('heatmap', ) and len(v) == len(rel['mask_2d'])}
    # pair the objects by depth (distinct in every scene here)
    order = [int(np.argmin(np.abs(rel_kept['depth'][:, 0] - d)))
             for d in ours['depth'].numpy()]
    assert sorted(order) == list(range(len(kept))), (rel_kept['depth'],
                                                     ours['depth'])
    rel_kept = {k: v[order] for k, v in rel_kept.items()}
    return rel_kept, ours, rel


def _assert_equal_targets(rel: Dict[str, np.ndarray],
                          ours: Dict[str, torch.Tensor],
                          rel_full: Dict[str, np.ndarray],
                          offset_3d: bool = True) -> None:
    """Every target of :func:`_both`'s paired objects is equal (the 3D
    offset only with ``offset_3d``)."""
    # heatmap: same peaks and Gaussians (class channels reordered)
    np.testing.assert_allclose(ours['heatmap'][0].numpy()[CLASS_SWAP],
                               rel_full['heatmap'], atol=1e-6)
    assert int((ours['heatmap'] == 1).sum()) == len(rel['depth'])
    # centre cells: the release's flat index row * W + column
    cells = ours['cells'].numpy()
    np.testing.assert_array_equal(
        cells[:, 1] * RELEASE_FEAT_HW[1] + cells[:, 0], rel['indices'])
    keys = ('offset_2d', 'size_2d') + (('offset_3d', ) if offset_3d else ())
    for key in keys:
        np.testing.assert_allclose(ours[key].numpy(), rel[key], atol=1e-4)
    np.testing.assert_allclose(ours['depth'].numpy(), rel['depth'][:, 0])
    # absolute sizes (release meanshape: False; ddml zero means)
    np.testing.assert_allclose(ours['size_3d'].numpy(),
                               rel['size_3d'][:, HWL_TO_LHW], atol=1e-6)
    np.testing.assert_array_equal(ours['heading_bin'].numpy(),
                                  rel['heading_bin'][:, 0])
    np.testing.assert_allclose(ours['heading_res'].numpy(),
                               rel['heading_res'][:, 0], atol=1e-5)
    assert ours['mask_3d'].all() and rel['mask_3d'].all()


@pytest.mark.parametrize('camera', ['no_z_offset', 'kitti'])
def test_targets_equal_the_release(scenes, camera):
    """Every target of the same objects equals the release's.

    The one exception is by design, and measured: the release projects the
    3D centre with ``Calibration.rect_to_img``, which divides by ``z``
    where the projection divides by ``z + P2[2, 3]`` (mmdet3d's
    ``points_cam2img``, which ddml uses, is exact). With KITTI's P2
    (``P2[2, 3]`` = 2.7 mm) the release's projected centres lie farther
    from the principal point by the factor ``(z + P2[2, 3]) / z``: up to
    0.070 cells (0.28 input pixels) of 3D offset on this scene (8-38 m),
    the heatmap cells being the same. With ``P2[2, 3] = 0`` everything is
    equal.
    """
    rel, ours, rel_full = _both(scenes[camera])
    # the same five objects: 2 Cars, Pedestrian, Cyclist, Car at 38 m
    np.testing.assert_array_equal(
        np.sort(rel['depth'][:, 0]), [8., 10., 15., 25., 38.])
    assert ours['labels'].tolist() == [2, 2, 0, 1, 2]
    _assert_equal_targets(rel, ours, rel_full, offset_3d=False)
    cells = ours['cells'].numpy()
    offset_3d_gap = np.abs(ours['offset_3d'].numpy() - rel['offset_3d'])
    if camera == 'no_z_offset':
        assert offset_3d_gap.max() < 1e-4
    else:
        assert offset_3d_gap.max() == pytest.approx(0.0703, abs=5e-4)
        # explained by P2[2, 3]: in original pixels the release's centre is
        # P0 . X / z, ddml's P0 . X / (z + P2[2, 3])
        z = ours['depth'].numpy().astype(np.float64)
        rel_px = _cells_to_pixels(cells + rel['offset_3d'])
        ours_px = _cells_to_pixels(cells + ours['offset_3d'].numpy())
        np.testing.assert_allclose(
            rel_px, ours_px * ((z + KITTI_P2[2, 3]) / z)[:, None], atol=2e-3)


def _release_rules_scene(camera: np.ndarray) -> list:
    """The parity scene plus objects that the release's rules treat
    apart: a Car cut by the image's left edge (annotated box != projected
    box) and Cars at the thresholds of KITTI's difficulty as the release
    computes it (``get_obj_level``: annotated height ``y2 - y1 + 1`` >= 25
    px, truncation <= 0.5, occlusion <= 2), each either side of one."""
    y = GROUND_Y
    objects = parity_scene(camera) + [
        kitti_label('Car', (-5.5, y, 8.5), (4.5, 1.5, 1.7), 0., camera,
                    truncated=0.3)
    ]
    # (x, z, annotated height px, truncation, occlusion); known or not
    cases = [(-8., 30., 23.9, 0., 0),  # 24.9 px: none
             (-4., 31., 24.0, 0., 0),  # 25.0 px: hard
             (0., 32., 40., 0.5, 0),  # truncation 0.5: hard
             (4., 33., 40., 0.51, 0),  # truncation 0.51: none
             (8., 34., 40., 0., 2),  # occlusion 2: hard
             (12., 35., 40., 0., 3)]  # occlusion 3: none
    for x, z, height, truncated, occluded in cases:
        u = (camera[0, 0] * x + camera[0, 2] * z + camera[0, 3]) / z
        v = (camera[1, 1] * (y - .75) + camera[1, 2] * z + camera[1, 3]) / z
        box = (u - 20., v - height / 2, u + 20., v + height / 2)
        objects.append(kitti_label('Car', (x, y, z), (3.9, 1.5, 1.6), 0.,
                                   camera, truncated=truncated,
                                   occluded=occluded, bbox=box))
    return objects


def test_release_target_rules_equal_the_release(tmp_path):
    """The release's own target rules against ddml's options for them
    (issue 21, item 2): the release's yaml (``bbox2d_type: 'anno'``, its
    'UnKnown' rule) against ``MonoDLEHead(bbox2d_source='annotated',
    skip_unknown_difficulty=True)`` with the annotated boxes and the
    difficulties carried by ddml's transforms. The same objects are kept
    (the 5 of the parity scene, the cut Car and the 3 Cars of a
    difficulty, not the 3 of none) and every target is equal, the 2D ones
    from the annotated boxes (camera without ``P2[2, 3]``)."""
    camera = P2_NO_Z_OFFSET
    root = write_kitti_root(tmp_path, [_release_rules_scene(camera)], camera)
    rel, ours, rel_full = _both(root, release_rules=True)
    np.testing.assert_array_equal(
        np.sort(rel['depth'][:, 0]),
        [8., 8.5, 10., 15., 25., 31., 32., 34., 38.])
    _assert_equal_targets(rel, ours, rel_full)
    # the cut Car's 2D size is its annotated (clipped) box's, in cells
    label = _release_rules_scene(camera)[8]
    assert label['location'][2] == 8.5 and label['bbox'][0] == 0.
    cut = int(np.flatnonzero(rel['depth'][:, 0] == 8.5)[0])
    width = (label['bbox'][2] - label['bbox'][0]) * RELEASE_RESOLUTION[0] / \
        1242 / RELEASE_DOWNSAMPLE
    assert rel['size_2d'][cut, 0] == pytest.approx(width, abs=1e-3)


def test_size_residuals_with_class_means(scenes):
    """With class means (the release's ``meanshape: True``, ddml's
    ``KITTI_MEAN_SIZES``, the same numbers in another order) the size
    residuals are equal too."""
    rel, ours, _ = _both(scenes['no_z_offset'], KITTI_MEAN_SIZES,
                         meanshape=True)
    np.testing.assert_allclose(ours['size_3d'].numpy(),
                               rel['size_3d'][:, HWL_TO_LHW], atol=1e-6)
    np.testing.assert_allclose(ours['dims'].numpy(),
                               rel['src_size_3d'][:, HWL_TO_LHW], atol=1e-6)
    assert np.abs(rel['size_3d']).max() < 1.0  # residuals, not sizes


def test_heading_bins_against_angle2class(monodle_lib):
    """``MonoDLECoder.encode_heading`` against the release's
    ``angle2class`` on angles all around the circle and 1e-4 rad either
    side of every bin edge: the same bins and residuals; and
    ``decode_heading`` against ``class2angle(to_label_format=True)``.

    Exactly on a bin edge the two may pick the two neighbouring bins
    (float rounding of ``(alpha + w / 2) mod 2 pi``; bin ``k`` with
    residual ``+w/2`` is bin ``k + 1`` with ``-w/2``): both codes then
    decode to the same angle.
    """
    coder = parity_monodle_head().bbox_coder
    w = 2 * np.pi / 12
    edges = np.arange(-6, 7) * w - w / 2
    angles = np.concatenate([np.linspace(-np.pi, np.pi, 720)[1:-1] + 1e-3,
                             edges + 1e-4, edges - 1e-4])
    bins, res = coder.encode_heading(torch.as_tensor(angles))
    expected = [monodle_lib.utils.angle2class(a) for a in angles]
    np.testing.assert_array_equal(bins.numpy(), [e[0] for e in expected])
    np.testing.assert_allclose(res.numpy(), [e[1] for e in expected],
                               atol=1e-9)
    back = coder.decode_heading(bins, res).numpy()
    ref = [monodle_lib.utils.class2angle(b, r, to_label_format=True)
           for b, r in zip(bins.tolist(), res.tolist())]
    np.testing.assert_allclose(back, ref, atol=1e-9)
    # on the edges (float32, as the pipeline's boxes): same angle back
    on_edge = edges.astype(np.float32)
    bins, res = coder.encode_heading(torch.as_tensor(on_edge))
    for angle, b, r in zip(on_edge, bins.tolist(), res.tolist()):
        rb, rr = monodle_lib.utils.angle2class(angle)
        assert abs(b - rb) in (0, 1, 11)
        ours = float(coder.decode_heading(torch.tensor([b]),
                                          torch.tensor([r]))[0])
        theirs = monodle_lib.utils.class2angle(rb, rr, to_label_format=True)
        gap = (ours - theirs + np.pi) % (2 * np.pi) - np.pi
        assert abs(gap) < 1e-6


def test_heatmap_radius_and_gaussian(monodle_lib):
    """``centernet_gaussian_radius`` and mmdet's ``gen_gaussian_target``
    (what ``MonoDLEHead`` draws with) against the release's
    ``gaussian_radius`` and ``draw_umich_gaussian``, on box sizes from 1 to
    200 cells and on peaks at and beyond the map's borders."""
    from mmdet.models.utils import gen_gaussian_target
    from ddml.models.heads.monodle_head import centernet_gaussian_radius
    rng = np.random.default_rng(0)
    sizes = np.concatenate([rng.uniform(0.5, 200., (300, 2)),
                            [[1., 1.], [25., 25.], [3., 90.]]])
    for w, h in sizes:
        assert centernet_gaussian_radius(h, w) == pytest.approx(
            monodle_lib.utils.gaussian_radius((w, h)), rel=1e-12)
    for cx, cy, radius in [(10, 10, 0), (10, 10, 3), (0, 0, 5), (39, 23, 7),
                           (2, 20, 12), (20, 1, 30)]:
        ref = np.zeros((24, 40), np.float32)
        monodle_lib.utils.draw_umich_gaussian(ref, (cx, cy), radius)
        ours = torch.zeros(24, 40)
        gen_gaussian_target(ours, [cx, cy], radius)
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-7)


def _one_object_root(tmp_path: Path, obj: dict) -> Path:
    return write_kitti_root(tmp_path, [[obj]], P2_NO_Z_OFFSET)


def test_truncated_object_2d_targets_differ_by_design(tmp_path):
    """A Car cut by the image's left edge (centre inside, box outside),
    the release's ``bbox2d_type='proj'`` against ddml's default
    (``bbox2d_source='projected'``).

    By design: the release's ``'proj'`` 2D box is the unclipped
    projection; ddml's converter clips the projected box to the image and
    ``AffineResize`` clips it to the input. So the 2D size and offset
    differ (measured: width 132.9 cells in the release, 90.1 here; box
    centres 21.4 cells apart), while the heatmap cell and every 3D target
    are the same. (The release's yaml uses ``'anno'``, the annotated box:
    ``test_release_target_rules_equal_the_release``.)
    """
    car = kitti_label('Car', (-5.5, GROUND_Y, 8.), (4.5, 1.5, 1.7), 0.,
                      P2=P2_NO_Z_OFFSET, truncated=0.3)
    rel, ours, _ = _both(_one_object_root(tmp_path, car))
    assert len(rel['depth']) == len(ours['depth']) == 1
    np.testing.assert_array_equal(ours['cells'].numpy()[0],
                                  [rel['indices'][0] % RELEASE_FEAT_HW[1],
                                   rel['indices'][0] // RELEASE_FEAT_HW[1]])
    np.testing.assert_allclose(ours['offset_3d'].numpy(), rel['offset_3d'],
                               atol=1e-4)
    np.testing.assert_allclose(ours['size_3d'].numpy(),
                               rel['size_3d'][:, HWL_TO_LHW], atol=1e-6)
    width_rel, width_ours = rel['size_2d'][0, 0], float(ours['size_2d'][0, 0])
    assert width_rel == pytest.approx(132.92, abs=0.01)
    assert width_ours == pytest.approx(90.09, abs=0.01)
    # heights agree (the box is cut on the left only)
    assert float(ours['size_2d'][0, 1]) == pytest.approx(rel['size_2d'][0, 1],
                                                         abs=1e-3)
    shift = float(ours['offset_2d'][0, 0]) - rel['offset_2d'][0, 0]
    assert shift == pytest.approx((width_rel - width_ours) / 2, abs=1e-3)
    assert shift == pytest.approx(21.42, abs=0.01)


def test_unknown_difficulty_objects(tmp_path):
    """An occlusion-3 Car (KITTI difficulty 'UnKnown') at 20 m.

    The release leaves it out of every target (``kitti_dataset.py``:
    ``level_str == 'UnKnown'``); ``MonoDLEHead``'s default
    (``skip_unknown_difficulty=False``) trains it as a positive. Measured:
    0 objects and an empty heatmap in the release, 1 object and 1 peak
    here. (With ``skip_unknown_difficulty=True``, as the release:
    ``test_release_target_rules_equal_the_release``.)
    """
    car = kitti_label('Car', (1., GROUND_Y, 20.), (3.9, 1.5, 1.6), 0.4,
                      P2=P2_NO_Z_OFFSET, occluded=3)
    root = _one_object_root(tmp_path, car)
    rel = release_targets(release_dataset(root))
    ours = monodle_head_targets(
        parity_monodle_head(),
        [mmdet3d_kitti_dataset(root)[0]['data_samples']])
    assert rel['mask_2d'].sum() == 0 and rel['heatmap'].max() == 0
    assert len(ours['depth']) == 1 and int((ours['heatmap'] == 1).sum()) == 1


def test_centre_just_left_of_the_image(tmp_path):
    """A Car whose projected centre lies 2 px left of the image.

    Not by design: the release takes the heatmap cell as
    ``int(centre / 4)``, which truncates toward zero, so a centre in
    (-4, 0) input pixels gets cell 0 and is trained (3D offset -0.5
    cells); mmdet3d's ``AffineResize`` drops objects whose centre is not
    inside the input (``centers_2d > 0``) and ``MonoDLEHead`` floors. Such
    objects (projected centre within one cell left of or above the image)
    are targets in the release only. Measured: 1 object in the release,
    0 here.
    """
    z, u = 20., -2.
    p = P2_NO_Z_OFFSET
    x = (u * z - p[0, 2] * z - p[0, 3]) / p[0, 0]
    car = kitti_label('Car', (x, GROUND_Y, z), (3.9, 1.5, 1.6), 0.,
                      P2=p, truncated=0.4)
    root = _one_object_root(tmp_path, car)
    rel = release_targets(release_dataset(root))
    ours = monodle_head_targets(
        parity_monodle_head(),
        [mmdet3d_kitti_dataset(root)[0]['data_samples']])
    kept = np.flatnonzero(rel['mask_2d'])
    assert len(kept) == 1
    assert rel['indices'][kept[0]] % RELEASE_FEAT_HW[1] == 0
    assert rel['offset_3d'][kept[0], 0] == pytest.approx(
        u * RELEASE_RESOLUTION[0] / 1242 / RELEASE_DOWNSAMPLE, abs=0.02)
    assert len(ours['depth']) == 0
