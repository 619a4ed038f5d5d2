"""Descriptor statistics on hand-made descriptors with known answers."""
import math

import numpy as np
import pytest

from ddml.analysis.descriptor_analysis import (descriptor_settings,
                                               pair_distances,
                                               pair_statistics, pca_2d)


def test_pair_distances_all_pairs_in_order():
    feats = np.array([[0., 0.], [3., 4.], [0., 1.]])
    depths = np.array([1., 2., 4.])
    pairs = pair_distances(feats, depths)
    # pairs (0,1), (0,2), (1,2)
    np.testing.assert_allclose(pairs.depth, [1., 3., 2.])
    np.testing.assert_allclose(pairs.descriptor, [5., 1., math.sqrt(18)])


def test_pair_distances_subsample_is_reproducible():
    rng = np.random.default_rng(0)
    feats, depths = rng.normal(size=(30, 4)), rng.uniform(2, 60, 30)
    a = pair_distances(feats, depths, max_pairs=50, seed=3)
    b = pair_distances(feats, depths, max_pairs=50, seed=3)
    assert a.depth.shape == (50, )
    np.testing.assert_array_equal(a.descriptor, b.descriptor)


def test_descriptor_equal_to_depth_is_perfect():
    depths = np.array([3., 5., 8., 13., 21., 34.])
    stats = pair_statistics(depths[:, None], depths, K=1.5, B=0.5, eps=10)
    assert stats['spearman'] == pytest.approx(1.0)
    assert stats['frac_inside'] == 1.0
    assert stats['frac_above'] == 0.0 and stats['frac_below'] == 0.0
    # depth gaps <= 10 m: 2, 5, 3, 8, 5, 10 (3-5, 3-8, 5-8, 5-13, 8-13,
    # 3-13) and 8 (13-21) -> 7 pairs
    assert stats['num_pairs_eps'] == 7
    assert stats['num_pairs'] == 15 and stats['num_objects'] == 6


def test_known_bound_fractions():
    # depths 0, 1, 2, 4 and descriptors on a line: e = |g_i - g_j|
    depths = np.array([0., 1., 2., 4.])
    g = np.array([0., 10., 10.2, 10.4])
    stats = pair_statistics(g[:, None], depths, K=1.5, B=0.5, eps=3.)
    # pairs with 0 < d <= 3: (0,1) d=1 e=10 -> above (10 > 2);
    # (0,2) d=2 e=10.2 -> above (> 3.5); (1,2) d=1 e=0.2 -> inside
    # (0.167 <= 0.2 <= 2); (1,3) d=3 e=0.4 -> below (0.4 < 1.5);
    # (2,3) d=2 e=0.2 -> below (0.2 < 0.833). (0,3) d=4 is outside eps.
    assert stats['num_pairs_eps'] == 5
    assert stats['frac_above'] == pytest.approx(2 / 5)
    assert stats['frac_below'] == pytest.approx(2 / 5)
    assert stats['frac_inside'] == pytest.approx(1 / 5)


def test_spearman_reversed_and_degenerate():
    # depth gaps (1, 3, 2) for pairs (0,1), (0,2), (1,2); descriptor gaps
    # (3, 1, 2): exactly reversed ranks
    depths = np.array([0., 1., 3.])
    feats = np.array([[0.], [3.], [1.]])
    assert pair_statistics(feats, depths)['spearman'] == pytest.approx(-1)
    # constant descriptors: no ranking; every pair has d >= 1, where the
    # lower bound d/1.5 - 0.5 > 0, so all are below it
    depths = np.array([1., 2., 4., 8.])
    stats = pair_statistics(np.zeros((4, 3)), depths, eps=100)
    assert math.isnan(stats['spearman'])
    assert stats['frac_below'] == 1.0 and stats['num_pairs_eps'] == 6
    # fewer than two objects: NaNs, no crash
    stats = pair_statistics(np.zeros((1, 3)), depths[:1])
    assert stats['num_pairs'] == 0 and math.isnan(stats['frac_inside'])


def test_equal_depth_pairs_are_not_in_the_neighbourhood():
    depths = np.array([5., 5., 6.])
    stats = pair_statistics(np.array([[0.], [7.], [1.]]), depths, eps=10)
    assert stats['num_pairs_eps'] == 2  # (0,2) and (1,2), not (0,1)


def test_pca_2d_recovers_a_line_and_is_deterministic():
    t = np.linspace(-1, 1, 20)
    direction = np.array([1., 2., 2.]) / 3.
    feats = t[:, None] * direction + 5.
    proj, ratio = pca_2d(feats)
    assert ratio[0] == pytest.approx(1.0) and ratio[1] == pytest.approx(0)
    assert abs(np.corrcoef(proj[:, 0], t)[0, 1]) == pytest.approx(1.0)
    proj2, _ = pca_2d(feats * 1.0)
    np.testing.assert_allclose(proj, proj2)
    one, r = pca_2d(np.ones((1, 3)))
    assert one.shape == (1, 2) and not r.any()


def test_descriptor_settings_plain_and_wrapper():
    plain = descriptor_settings(dict(type='SMOKEMono3D'))
    assert plain['wrapper'] is False and plain['feature_level'] == 0
    assert (plain['K'], plain['B'], plain['eps']) == (1.5, 0.5, 10.0)
    wrapper = descriptor_settings(
        dict(type='DepthDiscriminativeDetector', feature_level=1,
             descriptor_pool=3, max_depth=50.,
             qi_loss=dict(type='QuasiIsometricLoss', K=2.0, B=0.1, eps=5.)))
    assert wrapper['wrapper'] and wrapper['feature_level'] == 1
    assert wrapper['descriptor_pool'] == 3 and wrapper['max_depth'] == 50.
    assert (wrapper['K'], wrapper['B'], wrapper['eps']) == (2.0, 0.1, 5.0)


def test_window_coverage_counts_cells_on_the_box():
    """The k x k window around the centre's integer cell, cells counted by
    their centres: a box of 2x2 cells holds 4 of 9 cells of a 3x3 window
    and 1 of 1 of a 1x1 one; a large box holds the whole window."""
    from ddml.analysis.descriptor_analysis import window_coverage
    stride = (4.0, 4.0)
    # centre in cell (row 5, col 5); box covers cells 5-6 in x and y
    box, centre = [[20.0, 20.0, 28.0, 28.0]], [[21.0, 22.0]]
    assert window_coverage(box, centre, stride, 1) == pytest.approx([1.0])
    assert window_coverage(box, centre, stride, 3) == pytest.approx([4 / 9])
    assert window_coverage(box, centre, stride, 5) == pytest.approx([4 / 25])
    big = [[0.0, 0.0, 100.0, 100.0]]
    assert window_coverage(big, centre, stride, 5) == pytest.approx([1.0])
    # a centre off the box (truncated object) covers nothing of a 1x1
    assert window_coverage(box, [[60.0, 60.0]], stride, 1) == \
        pytest.approx([0.0])
    # the model's cell: a centre off a 10x10 map takes its last cell (9, 9),
    # which the box over pixels 36-40 holds
    edge_box = [[36.0, 36.0, 40.0, 40.0]]
    assert window_coverage(edge_box, [[60.0, 60.0]], stride, 1) == \
        pytest.approx([0.0])
    assert window_coverage(edge_box, [[60.0, 60.0]], stride, 1,
                           feat_hw=(10, 10)) == pytest.approx([1.0])


def test_depth_probe_reads_linear_depth_and_not_noise():
    """Depth written linearly into one channel is read back almost
    exactly; descriptors of pure noise give R^2 near or below 0 and an
    error near the spread of the depths."""
    from ddml.analysis.descriptor_analysis import depth_probe
    rng = np.random.default_rng(0)
    z = rng.uniform(4, 30, 400)
    feats = rng.normal(size=(400, 8))
    feats[:, 3] = 0.2 * z + 0.01 * rng.normal(size=400)
    good = depth_probe(feats, z)
    assert good['probe_r2'] > 0.99 and good['probe_mae'] < 0.2
    bad = depth_probe(rng.normal(size=(400, 8)), z)
    assert bad['probe_r2'] < 0.05
    assert bad['probe_mae'] > 0.8 * np.abs(z - z.mean()).mean()
    assert math.isnan(depth_probe(feats[:5], z[:5])['probe_mae'])
