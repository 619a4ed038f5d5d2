"""Targets of the method (ddml.models.targets): the object depth map
painter and shift-and-pair sampling."""
import math

import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmdet3d.structures import (CameraInstance3DBoxes,  # noqa: E402
                                points_cam2img)

from ddml.models.losses import MultiRangeDepthMetricLoss  # noqa: E402
from ddml.models.targets import (collect_shifted_pairs,  # noqa: E402
                                 paint_batch_depth_targets,
                                 paint_object_depth_map)
from ddml.structures import project_boxes_to_image  # noqa: E402
from ddml.testing import make_box_depth_sample  # noqa: E402

NAN, INF = float('nan'), float('inf')


# ---------------------------------------------------------------------------
# the object depth map
# ---------------------------------------------------------------------------


def test_paint_overlapping_boxes_near_wins():
    # stride 4: cell (r, c) has its centre at (4c + 2, 4r + 2)
    boxes = torch.tensor([[0., 0., 15., 11.],   # far: cols 0-3, rows 0-2
                          [6., 3., 21., 10.]])  # near: cols 1-4, rows 1-2
    depths = torch.tensor([30., 10.])
    expected = torch.zeros(4, 6)
    expected[0:3, 0:4] = 30.
    expected[1:3, 1:5] = 10.
    for order in ([0, 1], [1, 0]):  # independent of the box order
        out = paint_object_depth_map(boxes[order], depths[order], (4, 6), 4)
        assert torch.equal(out, expected)


def test_paint_cell_centre_rule_no_blending():
    # box [5, 9] covers only centres 6 (col 1): no partial/blended cells
    out = paint_object_depth_map(
        torch.tensor([[5., 5., 9., 9.]]), torch.tensor([7.]), (3, 3), 4)
    expected = torch.zeros(3, 3)
    expected[1, 1] = 7.
    assert torch.equal(out, expected)
    # edges are inclusive: a box from centre 2 to centre 6
    out = paint_object_depth_map(
        torch.tensor([[2., 2., 6., 2.5]]), torch.tensor([3.]), (3, 3), 4)
    assert out[0].tolist() == [3., 3., 0.] and out[1:].sum() == 0


def test_paint_boxes_clipped_at_borders():
    boxes = torch.tensor([[-50., -50., 5., 5.],      # top-left corner
                          [20., 10., 500., 13.],     # runs off the right
                          [100., 100., 200., 200.]])  # fully outside
    depths = torch.tensor([5., 6., 7.])
    out = paint_object_depth_map(boxes, depths, (4, 8), 4)
    expected = torch.zeros(4, 8)
    expected[0:1, 0:1] = 5.
    expected[2:3, 5:8] = 6.  # row centre 10 in [10, 13]; cols 5..7
    assert torch.equal(out, expected)


def test_paint_non_square_stride_and_degenerate_inputs():
    out = paint_object_depth_map(
        torch.tensor([[0., 0., 8., 2.]]), torch.tensor([4.]), (2, 2),
        (2., 8.))
    assert out.tolist() == [[4., 0.], [0., 0.]]
    empty = paint_object_depth_map(torch.zeros(0, 4), torch.zeros(0),
                                   (3, 5), 4)
    assert empty.shape == (3, 5) and empty.sum() == 0
    bad = paint_object_depth_map(
        torch.tensor([[0., 0., 8., 8.], [0., 0., 0., 8.],
                      [0., 0., 8., 8.], [float('nan'), 0., 8., 8.]]),
        torch.tensor([float('nan'), 3., -1., 2.]), (2, 2), 4)
    assert bad.sum() == 0
    with pytest.raises(ValueError, match='depths'):
        paint_object_depth_map(torch.zeros(2, 4), torch.ones(3), (2, 2), 4)


def test_batch_targets_depth_range_and_alignment():
    samples = [
        make_box_depth_sample([[0., 0., 8., 8.], [8., 0., 16., 8.]],
                              [1.5, 20.]),
        make_box_depth_sample([], []),
    ]
    targets = paint_batch_depth_targets(samples, (2, 4), 4., 2., 65.)
    assert targets.shape == (2, 2, 4)
    # the 1.5 m object is below min_depth: not painted
    assert targets[0].tolist() == [[0., 0., 20., 20.], [0., 0., 20., 20.]]
    assert targets[1].sum() == 0


def test_batch_targets_fall_back_to_projected_3d_boxes():
    cam2img = [[100., 0., 40., 0.], [0., 100., 20., 0.], [0., 0., 1., 0.],
               [0., 0., 0., 1.]]
    boxes_3d = CameraInstance3DBoxes(
        torch.tensor([[0., 1., 10., 2., 2., 2., 0.]]))
    expected_2d = project_boxes_to_image(boxes_3d, cam2img)
    corners = points_cam2img(boxes_3d.corners.reshape(-1, 3),
                             torch.tensor(cam2img))
    assert torch.allclose(expected_2d[0, :2], corners.min(0).values)
    assert torch.allclose(expected_2d[0, 2:], corners.max(0).values)
    # no 2D boxes at all: the 3D box is projected
    sample = make_box_depth_sample([], [10.], bboxes_3d=boxes_3d,
                                   cam2img=cam2img)
    with pytest.warns(UserWarning, match='projected 3D boxes'):
        targets = paint_batch_depth_targets([sample], (10, 20), 4.)
    assert torch.equal(
        targets[0], paint_object_depth_map(expected_2d, [10.], (10, 20), 4.))
    assert targets.sum() > 0


# ---------------------------------------------------------------------------
# collect_shifted_pairs
# ---------------------------------------------------------------------------


def test_shifted_pairs_single_image():
    # feats = 10 * y + x, depth = 1 + 4 * y + x on a 3 x 4 map.
    ys, xs = torch.meshgrid(
        torch.arange(3.0), torch.arange(4.0), indexing='ij')
    feats = (10 * ys + xs)[None, None].clone().requires_grad_(True)
    depth = (1 + 4 * ys + xs)[None].clone()
    depth[0, 0, 1] = 0.0  # invalid sample (x=1, y=0)
    depth[0, 2, 2] = NAN  # invalid anchor (x=2, y=2)
    fa, fs, za, zs = collect_shifted_pairs(
        feats, depth, shifts=((-2, -1), ), cross_image=True)
    # Anchors x in {2, 3}, y in {1, 2}; (3,1)->(1,0) and (2,2)->(0,1) are
    # dropped; B == 1 adds no cross-image pair.
    assert fa.flatten().tolist() == [12.0, 23.0]
    assert fs.flatten().tolist() == [0.0, 11.0]
    assert za.tolist() == [7.0, 12.0]
    assert zs.tolist() == [1.0, 6.0]
    (fa.sum() + 2 * fs.sum()).backward()
    grad = feats.grad[0, 0]
    assert grad[1, 2] == 1 and grad[2, 3] == 1
    assert grad[0, 0] == 2 and grad[1, 1] == 2
    assert grad.sum() == 6


def test_shifted_pairs_unit_size_two():
    feats = torch.arange(50.0).reshape(1, 2, 5, 5).requires_grad_(True)
    depth = torch.full((1, 5, 5), 2.0)
    depth[0, 4, :] = 1000.0  # border remainder: dropped
    depth[0, :, 4] = 1000.0
    depth[0, 0, 0] = 4.0  # unit (0, 0): only this cell valid
    depth[0, 0, 1] = 0.0
    depth[0, 1, 0] = -1.0
    depth[0, 1, 1] = NAN
    depth[0, 2:4, 2:4] = 0.0  # unit (1, 1): no valid depth
    fa, fs, za, zs = collect_shifted_pairs(
        feats, depth, unit_size=2, shifts=((1, 0), (0, 1)),
        cross_image=False)
    # Unit means (channel 0): (0,0)=3, (1,0)=5, (0,1)=13, (1,1)=15;
    # channel 1 adds 25. Pairs: (0,0)->(1,0) and (0,0)->(0,1).
    assert fa.tolist() == [[3.0, 28.0], [3.0, 28.0]]
    assert fs.tolist() == [[5.0, 30.0], [13.0, 38.0]]
    assert za.tolist() == [4.0, 4.0]
    assert zs.tolist() == [2.0, 2.0]
    fa.sum().backward()
    assert torch.allclose(feats.grad[0, :, :2, :2], torch.tensor(0.5))
    assert feats.grad[0, :, 4, :].abs().sum() == 0
    assert feats.grad[0, :, :, 4].abs().sum() == 0


def test_shifted_pairs_cross_image():
    feats = (10 * torch.arange(3.0)[:, None] +
             torch.arange(2.0)[None]).reshape(3, 1, 1, 2)
    depth = (1 + torch.arange(3.0)[:, None] +
             torch.arange(2.0)[None] / 10).reshape(3, 1, 2)
    depth[2, 0, 1] = INF
    fa, fs, za, zs = collect_shifted_pairs(
        feats, depth, shifts=(), cross_image=True)
    # Image b pairs with (b + 1) % 3 at the same unit.
    assert fa.flatten().tolist() == [0.0, 1.0, 10.0, 20.0]
    assert fs.flatten().tolist() == [10.0, 11.0, 20.0, 0.0]
    assert za.tolist() == pytest.approx([1.0, 1.1, 2.0, 3.0])
    assert zs.tolist() == pytest.approx([2.0, 2.1, 3.0, 1.0])


def test_shifted_pairs_empty():
    feats = torch.randn(1, 3, 2, 2, requires_grad=True)
    depth = torch.ones(1, 2, 2)
    # Single image, no cross pairs; a shift beyond the map gives nothing.
    fa, fs, za, zs = collect_shifted_pairs(
        feats, depth, shifts=((-5, 0), ), cross_image=True)
    assert fa.shape == (0, 3) and fs.shape == (0, 3)
    assert za.shape == (0, ) and zs.shape == (0, )
    value = MultiRangeDepthMetricLoss()(fa, fs, za, zs)
    assert value.item() == 0


def test_shifted_pairs_feed_the_loss():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 4, 8, 8, generator=gen, requires_grad=True)
    depth = torch.rand(2, 8, 8, generator=gen) * 40
    pairs = collect_shifted_pairs(feats, depth, unit_size=2)
    # 4 x 4 units; shift (-2, -1): anchors x in {2, 3}, y in {1, 2, 3},
    # 6 per image; cross-image: 16 per image.
    assert pairs[0].shape == (2 * 6 + 2 * 16, 4)
    value = MultiRangeDepthMetricLoss()(*pairs)
    value.backward()
    assert math.isfinite(value.item())
    assert feats.grad.abs().sum() > 0


def test_shifted_pairs_bad_arguments():
    with pytest.raises(ValueError, match='unit_size'):
        collect_shifted_pairs(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2),
                              unit_size=0)
    with pytest.raises(ValueError, match='depth'):
        collect_shifted_pairs(torch.zeros(1, 1, 2, 2), torch.ones(1, 3, 2))
    with pytest.raises(ValueError, match='shift'):
        collect_shifted_pairs(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2),
                              shifts=((1, ), ))
