"""ObjectDepthMapHead and the object depth map target painter."""
import math

import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.structures import InstanceData  # noqa: E402

from mmdet3d.registry import MODELS  # noqa: E402
from mmdet3d.structures import (CameraInstance3DBoxes,  # noqa: E402
                                Det3DDataSample, points_cam2img)

import ddml  # noqa: E402,F401  (registration)
from ddml.models.heads import (ObjectDepthMapHead,  # noqa: E402
                               paint_object_depth_map)
from ddml.models.heads.object_depth_map_head import (  # noqa: E402
    paint_batch_depth_targets, project_boxes_to_image)


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


def _sample(bboxes, depths, bboxes_3d=None, cam2img=None):
    sample = Det3DDataSample()
    if cam2img is not None:
        sample.set_metainfo(dict(cam2img=cam2img))
    gt = InstanceData()
    gt.bboxes = torch.tensor(bboxes, dtype=torch.float32).reshape(-1, 4)
    sample.gt_instances = gt
    gt3d = InstanceData()
    gt3d.depths = torch.tensor(depths, dtype=torch.float32)
    if bboxes_3d is not None:
        gt3d.bboxes_3d = bboxes_3d
    sample.gt_instances_3d = gt3d
    return sample


def test_batch_targets_depth_range_and_alignment():
    samples = [
        _sample([[0., 0., 8., 8.], [8., 0., 16., 8.]], [1.5, 20.]),
        _sample([], []),
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
    sample = _sample([], [10.], bboxes_3d=boxes_3d, cam2img=cam2img)
    with pytest.warns(UserWarning, match='projected 3D boxes'):
        targets = paint_batch_depth_targets([sample], (10, 20), 4.)
    assert torch.equal(
        targets[0], paint_object_depth_map(expected_2d, [10.], (10, 20), 4.))
    assert targets.sum() > 0


def test_head_registered_shapes_and_init():
    head = MODELS.build(dict(type='ObjectDepthMapHead', in_channels=8))
    assert isinstance(head, ObjectDepthMapHead)
    head.init_weights()
    for conv in (head.conv, head.pred):
        assert conv.weight.std() < 0.01 and conv.bias.abs().max() == 0
    logits, log_vars = head(torch.randn(2, 8, 5, 7))
    assert logits.shape == log_vars.shape == (2, 1, 5, 7)
    assert head.pred.out_channels == 2 and head.conv.out_channels == 256
    with pytest.raises(ValueError, match='in_channels=16'):
        head(torch.randn(1, 16, 5, 7))


def test_decode_and_loss_match_hand_computation():
    head = ObjectDepthMapHead(in_channels=4, loss_weight=2.0)
    logits = torch.tensor([0.3, -1.2, 2.0, 0.0]).reshape(1, 1, 2, 2)
    log_vars = torch.tensor([0.1, -0.5, 0.7, 0.2]).reshape(1, 1, 2, 2)
    targets = torch.tensor([[[10., 0.], [3., 25.]]])  # (B, H, W)
    loss = head.loss_by_feat(logits, log_vars, targets)['loss_obj_depth']
    terms = []
    for x, s, d in [(0.3, 0.1, 10.), (2.0, 0.7, 3.), (0.0, 0.2, 25.)]:
        d_hat = 1. / (1. / (1. + math.exp(-x)) + 1e-6) - 1.
        terms.append(math.sqrt(2.) * math.exp(-s) * abs(d_hat - d) + s)
    assert loss.item() == pytest.approx(2.0 * sum(terms) / 3, rel=1e-5)
    assert head.decode_depth(torch.tensor(0.)).item() == pytest.approx(
        1., rel=1e-5)


def test_loss_zero_and_attached_without_valid_cells():
    head = ObjectDepthMapHead(in_channels=3, feat_channels=8)
    feat = torch.randn(2, 3, 4, 4, requires_grad=True)
    losses = head.loss(feat, [_sample([], []), _sample([], [])], 4.)
    loss = losses['loss_obj_depth']
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert head.pred.weight.grad is not None
    assert torch.isfinite(feat.grad).all()


def test_loss_float32_under_autocast():
    head = ObjectDepthMapHead(in_channels=3, feat_channels=8)
    feat = torch.randn(1, 3, 4, 4)
    sample = _sample([[0., 0., 16., 16.]], [12.])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss(feat, [sample], 4.)['loss_obj_depth']
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(head.conv.weight.grad).all()
