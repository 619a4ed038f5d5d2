"""Tests of QuasiIsometricLoss (hand-computed where possible)."""
import math

import pytest
import torch

from ddml.models.losses import QuasiIsometricLoss

# Three objects, K=1.5, B=0.5, eps=10:
#   (0, 1): d=1, e=4     -> upper violation u = 4 - 1.5 - 0.5 = 2
#   (0, 2): d=4, e=0.1   -> lower violation l = 4/1.5 - 0.5 - 0.1 = 2.0667
#   (1, 2): d=3, e~4.001 -> within both bounds
FEATS = [[0.0, 0.0], [4.0, 0.0], [0.0, 0.1]]
DEPTHS = [10.0, 11.0, 14.0]
U01 = 2.0
E02 = 0.1
L02 = 4 / 1.5 - 0.5 - E02


def _feats(rows=FEATS):
    return torch.tensor(rows, requires_grad=True)


def _dist(f, i, j):
    return float((f[i] - f[j]).norm())


def _sgd_step(loss, feats, depths, lr=0.1):
    f = torch.tensor(feats, requires_grad=True)
    loss(f, torch.tensor(depths)).backward()
    assert torch.isfinite(f.grad).all()
    return (f - lr * f.grad).detach()


def test_hinge_hand_computed():
    loss = QuasiIsometricLoss(loss_weight=2.0)
    f = _feats()
    value = loss(f, torch.tensor(DEPTHS))
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(2.0 * (U01 + L02 + 0.0) / 3,
                                         abs=1e-5)
    # d/df_i e_ij = (f_i - f_j) / e_ij: +1 for the upper violator (0, 1),
    # -1 for the lower violator (0, 2), divided by |P| = 3.
    value.backward()
    expected = torch.tensor([[-1.0, 1.0], [1.0, 0.0], [0.0, -1.0]]) * 2 / 3
    torch.testing.assert_close(f.grad, expected, rtol=1e-4, atol=1e-4)


def test_official_hand_computed():
    loss = QuasiIsometricLoss(mode='official', temperature=10.0,
                              loss_weight=0.5)
    value = loss(_feats(), torch.tensor(DEPTHS))
    p = math.exp(-U01 / 10)
    s = math.exp(-L02 / 10)
    expected = 0.5 * -math.log(p / (p + s))
    assert value.item() == pytest.approx(expected, abs=1e-5)


def test_official_two_upper_violators_share_S():
    # Upper violators (0, 1), (0, 2), (1, 2) and one lower violator
    # (0, 3): d=6, e=0.2 -> l=3.3; the mean over U uses the same S.
    feats = [[0.0, 0.0], [4.0, 0.0], [0.0, 5.0], [0.0, 0.2]]
    depths = [10.0, 11.0, 9.0, 16.0]
    loss = QuasiIsometricLoss(mode='official')
    e = torch.tensor(feats)
    z = torch.tensor(depths)
    K, B, T = 1.5, 0.5, 10.0
    us, ls = [], []
    for i in range(4):
        for j in range(i + 1, 4):
            d = abs(depths[i] - depths[j])
            if not 0 < d <= 10:
                continue
            dist = float((e[i] - e[j]).norm())
            if dist - K * d - B > 0:
                us.append(dist - K * d - B)
            if d / K - dist - B > 0:
                ls.append(d / K - dist - B)
    assert len(us) == 3 and len(ls) == 1
    S = sum(math.exp(-v / T) for v in ls)
    expected = sum(-math.log(math.exp(-u / T) /
                             (math.exp(-u / T) + S)) for u in us) / len(us)
    assert loss(e, z).item() == pytest.approx(expected, abs=1e-5)


def test_official_zero_without_upper_or_lower_violators():
    loss = QuasiIsometricLoss(mode='official')
    # Only an upper violator: L is empty.
    f = _feats([[0.0, 0.0], [4.0, 0.0]])
    value = loss(f, torch.tensor([10.0, 11.0]))
    assert value.item() == 0 and value.grad_fn is not None
    # Only a lower violator: U is empty.
    f = _feats([[0.0, 0.0], [0.1, 0.0]])
    value = loss(f, torch.tensor([10.0, 14.0]))
    assert value.item() == 0 and value.grad_fn is not None


def test_eps_neighbourhood():
    loss = QuasiIsometricLoss(eps=10.0)
    # d=0 and d>eps pairs are excluded even though they violate bounds.
    f = _feats([[0.0, 0.0], [9.0, 0.0], [0.0, 0.0]])
    value = loss(f, torch.tensor([5.0, 5.0, 25.0]))
    assert value.item() == 0 and value.grad_fn is not None
    # d == eps is included: (0, 1) with d=10, e=0 -> l = 10/1.5 - 0.5.
    f = _feats([[0.0, 0.0], [0.0, 0.0]])
    value = loss(f, torch.tensor([5.0, 15.0]))
    assert value.item() == pytest.approx(10 / 1.5 - 0.5, abs=1e-4)


def test_hinge_gradient_direction():
    loss = QuasiIsometricLoss()
    # Upper-bound violator moves closer.
    up = [[0.0, 0.0], [4.0, 0.0]]
    new = _sgd_step(loss, up, [10.0, 11.0])
    assert _dist(new, 0, 1) < _dist(torch.tensor(up), 0, 1)
    # Lower-bound violator moves apart.
    lo = [[0.0, 0.0], [0.1, 0.0]]
    new = _sgd_step(loss, lo, [10.0, 14.0])
    assert _dist(new, 0, 1) > _dist(torch.tensor(lo), 0, 1)


@pytest.mark.parametrize('detach_target', [False, True])
def test_official_pulls_lower_violators_together(detach_target):
    before = _dist(torch.tensor(FEATS), 0, 2)
    official = QuasiIsometricLoss(
        mode='official', detach_target=detach_target)
    after_official = _dist(_sgd_step(official, FEATS, DEPTHS, lr=1.0), 0, 2)
    hinge = QuasiIsometricLoss(detach_target=detach_target)
    after_hinge = _dist(_sgd_step(hinge, FEATS, DEPTHS, lr=1.0), 0, 2)
    # The lower-bound violator (0, 2) is already too close: 'official'
    # pulls it closer still, 'hinge' pushes it apart.
    assert after_official < before < after_hinge


def test_identical_descriptors_finite_gradient():
    loss = QuasiIsometricLoss()
    f = torch.zeros(3, 4, requires_grad=True)
    value = loss(f, torch.tensor([1.0, 2.0, 8.0]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(f.grad).all()


def test_non_finite_rows_dropped():
    loss = QuasiIsometricLoss()
    rows = FEATS + [[float('nan'), 0.0], [1.0, 1.0], [float('inf'), 1.0]]
    depths = DEPTHS + [12.0, float('inf'), 13.0]
    f = _feats(rows)
    value = loss(f, torch.tensor(depths))
    value.backward()
    assert loss.num_dropped_rows == 3
    ref = QuasiIsometricLoss()(_feats(), torch.tensor(DEPTHS))
    assert value.item() == pytest.approx(ref.item(), abs=1e-6)
    assert torch.isfinite(f.grad).all()
    assert (f.grad[3:] == 0).all()
    loss(_feats(rows), torch.tensor(depths))
    assert loss.num_dropped_rows == 6


@pytest.mark.parametrize('mode', ['hinge', 'official'])
@pytest.mark.parametrize('n', [0, 1])
def test_empty_and_single_object(mode, n):
    loss = QuasiIsometricLoss(mode=mode)
    f = torch.randn(n, 8, requires_grad=True)
    value = loss(f, torch.rand(n) * 40)
    assert value.item() == 0 and value.grad_fn is not None
    value.backward()
    assert f.grad is not None and (f.grad == 0).all()


def test_all_rows_dropped():
    loss = QuasiIsometricLoss()
    f = torch.full((3, 2), float('nan'), requires_grad=True)
    value = loss(f, torch.tensor([1.0, 2.0, 3.0]))
    assert value.item() == 0 and value.grad_fn is not None


@pytest.mark.parametrize('mode', ['hinge', 'official'])
@pytest.mark.parametrize('detach_target', [False, True])
@pytest.mark.parametrize('chunk_size', [1, 7, 64])
def test_chunked_equals_unchunked(mode, detach_target, chunk_size):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(50, 8, generator=gen) * 3
    depths = torch.rand(50, generator=gen) * 30
    depths[5] = depths[6]  # a d=0 pair
    results = []
    for cs in (None, chunk_size):
        f = feats.clone().requires_grad_(True)
        loss = QuasiIsometricLoss(
            mode=mode, detach_target=detach_target, chunk_size=cs)
        value = loss(f, depths)
        value.backward()
        results.append((value.detach(), f.grad))
    (v0, g0), (v1, g1) = results
    assert v0.item() > 0
    torch.testing.assert_close(v1, v0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('mode', ['hinge', 'official'])
@pytest.mark.parametrize('chunk_size', [None, 16])
def test_memory_is_blockwise(mode, chunk_size):
    # All 300 objects are neighbours (45k pairs). Autograd keeps only
    # O(N * C) tensors and every pair block has at most chunk_size rows.
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(300, 4, generator=gen)
    depths = torch.rand(300, generator=gen) * 5
    loss = QuasiIsometricLoss(mode=mode, chunk_size=chunk_size)
    block_rows = []
    blocks = loss._blocks

    def spy(*args):
        for block in blocks(*args):
            block_rows.append(block.e.shape[0])
            yield block

    loss._blocks = spy
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    f = feats.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = loss(f, depths)
    value.backward()
    assert value.item() > 0 and torch.isfinite(f.grad).all()
    assert max(saved) <= 300 * 4
    assert max(block_rows) <= (chunk_size or 128)


def _reference(f, z, mode, detach_target, K=1.5, B=0.5, eps=10.0, T=10.0):
    """Direct autograd implementation over explicit pairs (float64)."""
    n = z.shape[0]
    i, j = torch.triu_indices(n, n, offset=1)
    d = (z[i] - z[j]).abs()
    keep = (d > 0) & (d <= eps)
    i, j, d = i[keep], j[keep], d[keep]
    target = f[j].detach() if detach_target else f[j]
    e = (f[i] - target).norm(dim=1)
    u, l_ = e - K * d - B, d / K - e - B
    if mode == 'hinge':
        return (u.clamp(min=0) + l_.clamp(min=0)).mean()
    S = torch.exp(-l_[l_ > 0] / T).sum()
    p = torch.exp(-u[u > 0] / T)
    return (-torch.log(p / (p + S))).mean()


@pytest.mark.parametrize('mode', ['hinge', 'official'])
@pytest.mark.parametrize('detach_target', [False, True])
def test_matches_autograd_reference(mode, detach_target):
    gen = torch.Generator().manual_seed(3)
    feats = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    depths = torch.rand(40, generator=gen, dtype=torch.float64) * 20
    ref_f = feats.clone().requires_grad_(True)
    ref = _reference(ref_f, depths, mode, detach_target)
    ref.backward()
    f = feats.float().requires_grad_(True)
    loss = QuasiIsometricLoss(
        mode=mode, detach_target=detach_target, chunk_size=9)
    value = loss(f, depths.float())
    value.backward()
    assert ref.item() > 0
    assert value.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(
        f.grad.double(), ref_f.grad, rtol=1e-4, atol=1e-6)


def test_chunked_no_grad():
    feats = torch.randn(20, 4)
    depths = torch.rand(20) * 20
    ref = QuasiIsometricLoss()(feats, depths)
    with torch.no_grad():
        value = QuasiIsometricLoss(chunk_size=3)(feats, depths)
    torch.testing.assert_close(value, ref)


def test_detach_target():
    f = _feats([[0.0, 0.0], [4.0, 0.0]])
    z = torch.tensor([10.0, 11.0])
    value = QuasiIsometricLoss(detach_target=True)(f, z)
    value.backward()
    assert value.item() == pytest.approx(U01 / 1, abs=1e-5)
    assert f.grad[0].abs().sum() > 0
    assert (f.grad[1] == 0).all()
    g = _feats([[0.0, 0.0], [4.0, 0.0]])
    QuasiIsometricLoss()(g, z).backward()
    assert f.grad[0].tolist() == pytest.approx(g.grad[0].tolist())
    assert g.grad[1].abs().sum() > 0


@pytest.mark.parametrize('mode', ['hinge', 'official'])
def test_low_precision_inputs(mode):
    gen = torch.Generator().manual_seed(1)
    # Squared norms ~ 16 * 300^2 overflow fp16 (max 65504).
    base = torch.randn(16, 16, generator=gen) * 300
    depths = torch.rand(16, generator=gen) * 30
    for dtype in (torch.float16, torch.bfloat16):
        f = base.to(dtype).requires_grad_(True)
        with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
            value = QuasiIsometricLoss(mode=mode)(f, depths.to(dtype))
        assert value.dtype == torch.float32
        assert torch.isfinite(value)
        value.backward()
        assert torch.isfinite(f.grad.float()).all()


@pytest.mark.parametrize('kwargs, name', [
    (dict(K=0.5), 'K'),
    (dict(B=-1.0), 'B'),
    (dict(eps=0.0), 'eps'),
    (dict(mode='softmax'), 'mode'),
    (dict(temperature=0.0), 'temperature'),
    (dict(chunk_size=0), 'chunk_size'),
    (dict(loss_weight=float('nan')), 'loss_weight'),
])
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        QuasiIsometricLoss(**kwargs)


def test_shape_mismatch():
    with pytest.raises(ValueError, match='depths'):
        QuasiIsometricLoss()(torch.zeros(3, 2), torch.zeros(4))


def test_registry_build():
    import ddml.models.losses  # noqa: F401
    from mmdet3d.registry import MODELS
    loss = MODELS.build(dict(type='QuasiIsometricLoss'))
    assert isinstance(loss, QuasiIsometricLoss)
    assert loss.mode == 'hinge' and loss.K == 1.5 and loss.B == 0.5
    official = MODELS.build(
        dict(
            type='QuasiIsometricLoss',
            mode='official',
            detach_target=True,
            loss_weight=0.5))
    assert official.mode == 'official' and official.detach_target
