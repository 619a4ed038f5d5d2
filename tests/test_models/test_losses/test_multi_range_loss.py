"""Tests of MultiRangeDepthMetricLoss (its shift-and-pair sampling:
tests/test_models/test_targets.py)."""
import pytest
import torch

from ddml.models.losses import MultiRangeDepthMetricLoss
from ddml.models.targets import collect_shifted_pairs

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


def test_forward_shifted_pairs_is_the_loss_of_the_shifted_pairs():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 4, 8, 8, generator=gen, requires_grad=True)
    depth = torch.rand(2, 8, 8, generator=gen) * 40
    depth[:, :2] = 0.  # background rows are not paired
    loss = MultiRangeDepthMetricLoss()
    options = dict(unit_size=2, shifts=((-2, -1), (1, 0)), cross_image=True)
    value = loss.forward_shifted_pairs(feats, depth, **options)
    expected = loss(*collect_shifted_pairs(feats, depth, **options))
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert value.item() > 0
    value.backward()
    assert feats.grad.abs().sum() > 0
