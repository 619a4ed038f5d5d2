"""ObjectDepthMapHead (its targets: tests/test_models/test_targets.py)."""
import math

import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmdet3d.registry import MODELS  # noqa: E402

import ddml  # noqa: E402,F401  (registration)
from ddml.models.heads import ObjectDepthMapHead  # noqa: E402
from ddml.testing import make_box_depth_sample  # noqa: E402


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
    empty = [make_box_depth_sample([], []), make_box_depth_sample([], [])]
    losses = head.loss(feat, empty, 4.)
    loss = losses['loss_obj_depth']
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert head.pred.weight.grad is not None
    assert torch.isfinite(feat.grad).all()


def test_loss_float32_under_autocast():
    head = ObjectDepthMapHead(in_channels=3, feat_channels=8)
    feat = torch.randn(1, 3, 4, 4)
    sample = make_box_depth_sample([[0., 0., 16., 16.]], [12.])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss(feat, [sample], 4.)['loss_obj_depth']
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(head.conv.weight.grad).all()


def test_depth_range_decides_what_is_painted():
    # a near (5 m) and a far (30 m) object, side by side
    sample = make_box_depth_sample([[0., 0., 8., 8.], [8., 0., 16., 8.]],
                                   [5., 30.])
    default = ObjectDepthMapHead(in_channels=3)
    assert default.get_targets([sample], (2, 4), 4.)[0].tolist() == [
        [5., 5., 30., 30.], [5., 5., 30., 30.]]
    near_cut = ObjectDepthMapHead(in_channels=3, min_depth=10.)
    assert near_cut.get_targets([sample], (2, 4), 4.)[0].tolist() == [
        [0., 0., 30., 30.], [0., 0., 30., 30.]]
    far_cut = ObjectDepthMapHead(in_channels=3, max_depth=20.)
    assert far_cut.get_targets([sample], (2, 4), 4.)[0].tolist() == [
        [5., 5., 0., 0.], [5., 5., 0., 0.]]
    with pytest.raises(ValueError, match='min_depth .* max_depth'):
        ObjectDepthMapHead(in_channels=3, min_depth=30., max_depth=20.)
