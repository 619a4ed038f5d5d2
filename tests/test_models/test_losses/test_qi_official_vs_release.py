"""``QuasiIsometricLoss(mode='official')`` against the authors' own loss
function (issue 16, item 5; issue 21, item 4).

The release (https://github.com/mingyuShin/DDML-M3DOD) computes its
quasi-isometric loss in ``_update_K_return_loss`` of
``lib/losses/centernet_loss.py``, called with ``K``, ``B`` and ``rad`` of
``experiments/example/kitti_example.yaml`` (1.5, 0.5, 10), its default
temperature 10 and its built-in weight 0.5, on descriptors of shape
(M, C) and depth targets of shape (M, 1).  This test reads that function
from the release's tree *outside* this repository (nothing of it is
copied here): ``../shared/reference/DDML-M3DOD`` (commit c378da3; see
:mod:`ddml.testing.reference`, ``DDML_REFERENCE_ROOT`` overrides the
folder), or a checkout named by ``DDML_RELEASE_REPO``::

    git clone https://github.com/mingyuShin/DDML-M3DOD /tmp/DDML-M3DOD
    DDML_RELEASE_REPO=/tmp/DDML-M3DOD python -m pytest -s \\
        tests/test_models/test_losses/test_qi_official_vs_release.py

It skips, with the reason, when neither is there. It runs the release's
function and ddml's loss on the same random inputs in float32, requires
the values and the gradients with respect to the descriptors to agree,
and prints the largest differences and the release's commit.
"""
import os
from pathlib import Path

import pytest
import torch

from ddml.models.losses import QuasiIsometricLoss
from ddml.testing.reference import (load_definitions, release_commit,
                                    require_release)

RELEASE_FILE = Path('lib') / 'losses' / 'centernet_loss.py'
RELEASE_FN = '_update_K_return_loss'
#: The release's settings (kitti_example.yaml, the function's defaults).
K, B, RAD, TEMPERATURE, WEIGHT = 1.5, 0.5, 10.0, 10.0, 0.5


def _release():
    """The release's function, compiled from its tree, and its commit."""
    override = os.environ.get('DDML_RELEASE_REPO') or None
    require_release('ddml', override)
    ns = load_definitions('ddml', str(RELEASE_FILE), [RELEASE_FN],
                          root=override)
    return getattr(ns, RELEASE_FN), release_commit('ddml', override)


#: Pairs whose bound violation is within this of zero are avoided: the
#: form jumps there (a pair entering U adds log(1 + S / p) to the mean),
#: so float rounding alone could put it on either side.
MARGIN = 2e-5


def _near_a_bound(feats: torch.Tensor, depths: torch.Tensor) -> bool:
    """Whether a pair of the neighbourhood sits within MARGIN of a bound,
    or has (nearly) coinciding descriptors (float64).

    ddml floors a squared distance at 1e-6 (|f_i|^2 + |f_j|^2) (features
    centred on their mean), the float32 rounding of its Gram formula, and
    gives such a pair no gradient (no reliable direction); the release's
    float64 cdist does.  Cases with a pair within 10x that floor are
    drawn again, so the comparison measures the rest.
    """
    f = feats.double() - feats.double().mean(0)
    e = torch.cdist(f, f)
    sq = (f**2).sum(1)
    d = (depths.double()[:, None] - depths.double()[None, :]).abs()
    pairs = (d > 0) & (d <= RAD)
    upper = (e - K * d - B)[pairs].abs()
    lower = (d / K - e - B)[pairs].abs()
    floor = 1e-5 * (sq[:, None] + sq[None, :])
    return bool((upper < MARGIN).any() or (lower < MARGIN).any()
                or (e**2 <= floor)[pairs].any())


def _cases():
    """(descriptors (M, C), depths (M,)) in float32 on scales that put
    pairs above the upper bound, below the lower bound, both, or neither;
    equal depths; 2 to 300 objects; none within MARGIN of a bound."""
    gen = torch.Generator().manual_seed(2016)
    cases = []
    for num in (2, 3, 5, 8, 17, 40, 120, 300):
        # many 1-channel descriptors always hold a nearly coinciding pair
        for channels in (1, 8, 64) if num <= 17 else (8, 64):
            for scale in (0.1, 0.5, 2.0, 8.0):
                for _ in range(100):
                    feats = torch.randn(num, channels, generator=gen) * scale
                    depths = torch.rand(num, generator=gen) * 55 + 3
                    if num >= 5:
                        depths[1] = depths[0]  # a pair at equal depth
                    if not _near_a_bound(feats, depths):
                        break
                else:
                    raise AssertionError(f'no case of {num} x {channels}')
                cases.append((feats, depths))
    return cases


def _run_release(release, feats, depths, dtype):
    x = feats.detach().to(dtype).clone().requires_grad_(True)
    value = torch.as_tensor(release(x, depths.to(dtype)[:, None], K, B, RAD))
    if value.requires_grad:
        value.backward()
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    return value.item(), grad.float()


def test_official_mode_equals_the_release():
    """ddml (float32) against the release in float64 on the same float32
    inputs; the release in float32 is printed for scale (its torch.cdist
    takes the matrix-product route beyond 25 rows)."""
    release, commit = _release()
    ours = QuasiIsometricLoss(K=K, B=B, eps=RAD, mode='official',
                              temperature=TEMPERATURE, detach_target=True,
                              loss_weight=WEIGHT)
    worst = dict(ours=[0.0, 0.0], release32=[0.0, 0.0])
    nonzero = 0
    cases = _cases()
    for feats, depths in cases:
        value_ref, grad_ref = _run_release(release, feats, depths,
                                           torch.float64)
        value32, grad32 = _run_release(release, feats, depths,
                                       torch.float32)
        x = feats.clone().requires_grad_(True)
        value = ours(x, depths)
        value.backward()
        scale = float(grad_ref.abs().max())
        for name, (v, g) in (('ours', (value.item(), x.grad)),
                             ('release32', (value32, grad32))):
            worst[name][0] = max(worst[name][0],
                                 abs(v - value_ref) / max(value_ref, 1.0))
            worst[name][1] = max(worst[name][1],
                                 float((g - grad_ref).abs().max()) /
                                 max(scale, 1e-6))
        nonzero += value_ref > 0
        assert value.item() == pytest.approx(value_ref, rel=1e-5,
                                             abs=1e-6), (feats.shape,
                                                         value.item(),
                                                         value_ref)
        torch.testing.assert_close(x.grad, grad_ref,
                                   atol=5e-5 * max(scale, 1e-3), rtol=1e-4)
    print(f'\nrelease {commit}: {len(cases)} cases ({nonzero} with a '
          'non-zero loss) against the release in float64; largest '
          'difference of the value (relative to max(value, 1)) and of the '
          'gradient (relative to its largest entry): ddml float32 '
          f'{worst["ours"][0]:.2g}, {worst["ours"][1]:.2g}; release '
          f'float32 {worst["release32"][0]:.2g}, '
          f'{worst["release32"][1]:.2g}')
    assert nonzero >= 20
