"""Tests of MultiRangeDepthMetricLoss and collect_shifted_pairs."""
import math

import pytest
import torch

from ddml.models.losses import (MultiRangeDepthMetricLoss,
                                collect_shifted_pairs)

NAN, INF = float('nan'), float('inf')

# Hand-made pairs for the default ranges: pos_radius=0.25,
# neg_bounds=(0.5, 2, 8), margins=(1, 2, 4).
#   delta  dist   role
#   0.1    5      positive
#   0.2    1      positive                      -> mean 3
#   0.4    0      ignored band (0.25, 0.5]
#   1      0.5    range 0 (0.5, 2]: 1 - 0.5 = 0.5
#   2      0      range 0 (upper bound kept): 1 - 0 = 1 -> mean 0.75
#   5      1.5    range 1 (2, 8]: 2 - 1.5 = 0.5         -> mean 0.5
#   20     5      range 2 (8, inf): max(0, 4 - 5) = 0    -> mean 0
SAMPLE_FEATS = [[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [0.5, 0.0], [0.0, 0.0],
                [0.0, 1.5], [3.0, 4.0]]
SAMPLE_DEPTHS = [10.1, 10.2, 10.4, 11.0, 12.0, 15.0, 30.0]


def _pairs(sample_feats=SAMPLE_FEATS, sample_depths=SAMPLE_DEPTHS):
    m = len(sample_feats)
    fa = torch.zeros(m, 2, requires_grad=True)
    fs = torch.tensor(sample_feats, requires_grad=True)
    za = torch.full((m, ), 10.0)
    zs = torch.tensor(sample_depths)
    return fa, fs, za, zs


def test_hand_computed_per_range():
    loss = MultiRangeDepthMetricLoss(loss_weight=2.0)
    value = loss(*_pairs())
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(2.0 * (3 + 0.75 + 0.5 + 0), abs=1e-5)
    # Each range on its own.
    for keep, expected in [([0, 1], 3.0), ([3, 4], 0.75), ([5], 0.5),
                           ([6], 0.0), ([2], 0.0)]:
        fa, fs, za, zs = _pairs()
        value = MultiRangeDepthMetricLoss()(fa[keep], fs[keep], za[keep],
                                            zs[keep])
        assert value.item() == pytest.approx(expected, abs=1e-5)
        assert value.grad_fn is not None


def test_uniform_strategy():
    loss = MultiRangeDepthMetricLoss(neg_bounds=(0.5, ), margins=(2.0, ))
    # Negatives: hinge 2 - {0.5, 0, 1.5, 5} -> {1.5, 2, 0.5, 0}, mean 1.
    assert loss(*_pairs()).item() == pytest.approx(3.0 + 1.0, abs=1e-5)


def test_relative_mode():
    loss = MultiRangeDepthMetricLoss(
        pos_radius=0.1, neg_bounds=(0.2, 1.0), margins=(1.0, 2.0),
        relative=True)
    fa = torch.zeros(4, 2, requires_grad=True)
    fs = torch.tensor([[0.6, 0.8], [0.25, 0.0], [0.5, 0.0], [1.5, 0.0]],
                      requires_grad=True)
    za = torch.tensor([10.0, 10.0, 20.0, 5.0])
    zs = torch.tensor([10.5, 15.0, 10.0, 20.0])
    # Relative deltas 0.05 (pos), 0.5 and 1.0 (range 0), 3.0 (range 1):
    # 1 + mean(0.75, 0.5) + 0.5.
    assert loss(fa, fs, za, zs).item() == pytest.approx(2.125, abs=1e-5)
    # In metres the same pairs would all be in the last ranges.
    absolute = MultiRangeDepthMetricLoss(
        pos_radius=0.1, neg_bounds=(0.2, 1.0), margins=(1.0, 2.0))
    assert absolute(fa, fs, za, zs).item() != pytest.approx(2.125)


def test_ignored_band_gives_attached_zero():
    fa = torch.zeros(2, 3, requires_grad=True)
    fs = torch.zeros(2, 3, requires_grad=True)
    value = MultiRangeDepthMetricLoss()(fa, fs, torch.tensor([10.0, 20.0]),
                                        torch.tensor([10.3, 20.5]))
    assert value.item() == 0 and value.grad_fn is not None
    value.backward()
    assert (fa.grad == 0).all()


def test_invalid_pairs_ignored():
    bad_feats = [[0.0, 0.0]] * 4 + [[NAN, 0.0], [INF, 1.0]]
    bad_depths = [0.0, -1.0, NAN, INF, 11.0, 15.0]
    fa, fs, za, zs = _pairs(SAMPLE_FEATS + bad_feats,
                            SAMPLE_DEPTHS + bad_depths)
    za = za.clone()
    za[-6] = NAN  # anchor depth invalid too
    value = MultiRangeDepthMetricLoss()(fa, fs, za, zs)
    assert value.item() == pytest.approx(3 + 0.75 + 0.5, abs=1e-5)
    value.backward()
    assert torch.isfinite(fa.grad).all() and torch.isfinite(fs.grad).all()
    assert (fs.grad[len(SAMPLE_FEATS):] == 0).all()
    # Non-positive anchor depth.
    fa, fs, za, zs = _pairs()
    za = za.clone()
    za[:] = 0.0
    value = MultiRangeDepthMetricLoss(relative=True)(fa, fs, za, zs)
    assert value.item() == 0 and value.grad_fn is not None


def test_zero_distance_gradient_finite():
    fa = torch.zeros(2, 4, requires_grad=True)
    fs = torch.zeros(2, 4, requires_grad=True)
    value = MultiRangeDepthMetricLoss()(fa, fs, torch.tensor([10.0, 10.0]),
                                        torch.tensor([10.1, 13.0]))
    value.backward()
    assert torch.isfinite(fa.grad).all() and torch.isfinite(fs.grad).all()


def test_empty_input():
    fa = torch.zeros(0, 4, requires_grad=True)
    value = MultiRangeDepthMetricLoss()(fa, fa, torch.zeros(0),
                                        torch.zeros(0))
    assert value.item() == 0 and value.grad_fn is not None


def test_bf16_autocast():
    fa, fs, za, zs = _pairs()
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        value = MultiRangeDepthMetricLoss()(fa.bfloat16(), fs.bfloat16(),
                                            za.bfloat16(), zs.bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_forward_all_pairs():
    loss = MultiRangeDepthMetricLoss()
    desc = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.5]],
                        requires_grad=True)
    depths = torch.tensor([10.0, 10.1, 11.0])
    # (0,1): positive, dist 5; (0,2): range 0, 1 - 0.5; (1,2): range 0,
    # dist 4.61 -> 0.
    value = loss.forward_all_pairs(desc, depths)
    assert value.item() == pytest.approx(5 + 0.25, abs=1e-5)
    i, j = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    ref = loss(desc[i], desc[j], depths[i], depths[j])
    assert value.item() == pytest.approx(ref.item())
    single = loss.forward_all_pairs(desc[:1], depths[:1])
    assert single.item() == 0 and single.grad_fn is not None


@pytest.mark.parametrize('kwargs, name', [
    (dict(neg_bounds=(0.5, 2.0), margins=(1.0, )), 'margins'),
    (dict(neg_bounds=(0.5, 0.5), margins=(1.0, 2.0)), 'increasing'),
    (dict(neg_bounds=(2.0, 1.0), margins=(1.0, 2.0)), 'increasing'),
    (dict(pos_radius=1.0, neg_bounds=(0.5, ), margins=(2.0, )),
     'pos_radius'),
    (dict(neg_bounds=(), margins=()), 'neg_bounds'),
    (dict(margins=(1.0, -2.0, 4.0)), 'margins'),
])
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiRangeDepthMetricLoss(**kwargs)


def test_registry_build():
    import ddml.models.losses  # noqa: F401
    from mmdet3d.registry import MODELS
    loss = MODELS.build(
        dict(
            type='MultiRangeDepthMetricLoss',
            neg_bounds=(0.5, ),
            margins=(2.0, )))
    assert isinstance(loss, MultiRangeDepthMetricLoss)
    assert loss.neg_bounds == (0.5, ) and loss.margins == (2.0, )


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
