"""DDML's losses, descriptor gather and depth painter on CUDA equal the CPU.

Inputs are float64; the losses compute in float32 internally (autocast
off), so CUDA and the CPU differ only by the order of float32 sums and
agree to 1e-6 (relative and absolute) in values and gradients. Each case
first checks on the CPU, in float64, that no descriptor distance lies
within 1e-4 of a kink of the loss (a hinge, a margin), where float32
rounding could legitimately flip a pair between the two devices.
"""
from typing import Dict, Tuple

import pytest
import torch

from ddml.models import (collect_object_descriptors, collect_shifted_pairs,
                         infer_feature_stride, paint_batch_depth_targets)
from ddml.models.losses import MultiRangeDepthMetricLoss, QuasiIsometricLoss
from ddml.testing import make_samples

pytestmark = pytest.mark.cuda

TOL = dict(rtol=1e-6, atol=1e-6)
KINK_MARGIN = 1e-4


def qi_inputs(seed: int, num: int = 256,
              channels: int = 16) -> Tuple[torch.Tensor, torch.Tensor]:
    """Descriptors (std 0.4, so 'official' has pairs in U and L) and depths
    uniform in (0, 60] m, float64 on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(num, channels, generator=gen,
                        dtype=torch.float64) * 0.4
    depths = (1 - torch.rand(num, generator=gen, dtype=torch.float64)) * 60
    return feats, depths


def value_and_grad(loss: torch.nn.Module, device: torch.device,
                   *inputs: torch.Tensor,
                   grad_args: int = 1) -> Tuple[torch.Tensor, list]:
    """Loss value and the gradients of the first ``grad_args`` inputs,
    computed on ``device`` (synchronised) and returned on the CPU."""
    args = [x.detach().clone().to(device) for x in inputs]
    for x in args[:grad_args]:
        x.requires_grad_(True)
    value = loss(*args)
    assert value.device.type == device.type
    assert value.dtype == torch.float32 and value.dim() == 0
    value.backward()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    grads = []
    for x in args[:grad_args]:
        assert x.grad is not None
        assert x.grad.device.type == device.type
        assert x.grad.dtype == torch.float64
        grads.append(x.grad.cpu())
    return value.detach().cpu().double(), grads


def assert_same_grad(cuda_grad: torch.Tensor,
                     cpu_grad: torch.Tensor) -> None:
    """Equal to 1e-6, and to 1e-5 of the largest entry (the gradients are
    around 1e-3, so the absolute tolerance alone would be loose)."""
    torch.testing.assert_close(cuda_grad, cpu_grad, **TOL)
    scale = float(cpu_grad.abs().max())
    assert scale > 0
    assert float((cuda_grad - cpu_grad).abs().max()) <= 1e-5 * scale


def qi_kink_distance(feats: torch.Tensor, depths: torch.Tensor, K: float,
                     B: float, eps: float) -> float:
    """Smallest distance of a pair (0 < d <= eps) to the hinges
    e = K d + B and e = d / K - B, in float64."""
    centred = feats - feats.mean(0)
    e = torch.cdist(centred, centred)
    d = (depths[None] - depths[:, None]).abs()
    in_p = (d > 0) & (d <= eps)
    upper = (e - K * d - B).abs()
    lower = (d / K - B - e).abs()
    return float(torch.minimum(upper, lower)[in_p].min())


QI_CASES: Dict[str, dict] = {
    'hinge': dict(mode='hinge'),
    'hinge-chunk64': dict(mode='hinge', chunk_size=64),
    'hinge-detach': dict(mode='hinge', detach_target=True),
    'official-release': dict(mode='official', temperature=10.0,
                             detach_target=True, loss_weight=0.5),
    'official-chunk64': dict(mode='official', chunk_size=64),
}


@pytest.mark.parametrize('case', list(QI_CASES))
def test_quasi_isometric_loss_cuda_equals_cpu(ieee_fp32, case):
    device = ieee_fp32
    kwargs = dict(K=1.5, B=0.5, eps=10.0, **QI_CASES[case])
    feats, depths = qi_inputs(seed=1)
    assert qi_kink_distance(feats, depths, 1.5, 0.5, 10.0) > KINK_MARGIN
    loss = QuasiIsometricLoss(**kwargs)
    cpu_value, (cpu_grad, ) = value_and_grad(loss, torch.device('cpu'),
                                             feats, depths)
    assert cpu_value != 0 and cpu_grad.abs().sum() > 0  # a real case
    cuda_value, (cuda_grad, ) = value_and_grad(loss, device, feats, depths)
    torch.testing.assert_close(cuda_value, cpu_value, **TOL)
    assert_same_grad(cuda_grad, cpu_grad)


def test_quasi_isometric_loss_cuda_fp16_input(ieee_fp32):
    """Half-precision descriptors on CUDA (as under autocast): the loss
    upcasts them, so it equals the CPU on the same (rounded) values."""
    device = ieee_fp32
    feats, depths = qi_inputs(seed=2)
    feats = feats.half().double()  # the values fp16 can hold
    assert qi_kink_distance(feats, depths, 1.5, 0.5, 10.0) > KINK_MARGIN
    loss = QuasiIsometricLoss()
    cpu_value, (cpu_grad, ) = value_and_grad(loss, torch.device('cpu'),
                                             feats, depths)
    half = feats.to(device).half().detach().requires_grad_(True)
    value = loss(half, depths.to(device))
    value.backward()
    torch.cuda.synchronize(device)
    assert value.dtype == torch.float32
    assert half.grad.dtype == torch.float16
    torch.testing.assert_close(value.detach().cpu().double(), cpu_value,
                               **TOL)
    # the gradient is rounded to fp16 on its way back
    torch.testing.assert_close(half.grad.cpu().double(), cpu_grad,
                               rtol=1e-3, atol=1e-6)


def metric_inputs(seed: int, num: int = 1000, channels: int = 8):
    """Anchor/sample features (norms around the margins) and depths with
    differences spread over every range, float64 on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    fa = torch.randn(num, channels, generator=gen, dtype=torch.float64)
    fs = torch.randn(num, channels, generator=gen, dtype=torch.float64)
    za = 2 + 50 * torch.rand(num, generator=gen, dtype=torch.float64)
    zs = za + 20 * (torch.rand(num, generator=gen, dtype=torch.float64) -
                    0.5)
    zs[::97] = float('nan')  # dropped on both devices
    zs[1::89] = -1.0
    return fa, fs, za, zs


def metric_kink_distance(loss: MultiRangeDepthMetricLoss, fa, fs, za,
                         zs) -> float:
    """Smallest distance of a negative pair's feature distance to its
    range's margin, in float64.

    Range membership needs no margin: the depth differences are
    elementwise float32 operations, rounded identically on both devices,
    while the feature distance is a sum whose order may differ.
    """
    valid = torch.isfinite(zs) & (zs > 0)
    delta = (za - zs).abs()[valid]
    if loss.relative:
        delta = delta / torch.minimum(za, zs)[valid]
    dist = (fa - fs).norm(dim=1)[valid]
    gaps = [float('inf')]
    uppers = loss.neg_bounds[1:] + (float('inf'), )
    for low, high, margin in zip(loss.neg_bounds, uppers, loss.margins,
                                 strict=True):
        neg = (delta > low) & (delta <= high)
        if bool(neg.any()):
            gaps.append(float((dist[neg] - margin).abs().min()))
    return min(gaps)


@pytest.mark.parametrize('relative', [False, True])
def test_multi_range_loss_cuda_equals_cpu(ieee_fp32, relative):
    device = ieee_fp32
    loss = MultiRangeDepthMetricLoss(
        pos_radius=0.25 if not relative else 0.01,
        neg_bounds=(0.5, 2.0, 8.0) if not relative else (0.02, 0.1, 0.3),
        margins=(2.0, 3.0, 4.0),
        relative=relative)
    inputs = metric_inputs(seed=6)
    assert metric_kink_distance(loss, *inputs) > KINK_MARGIN
    cpu_value, cpu_grads = value_and_grad(
        loss, torch.device('cpu'), *inputs, grad_args=2)
    assert cpu_value > 0
    cuda_value, cuda_grads = value_and_grad(loss, device, *inputs,
                                            grad_args=2)
    torch.testing.assert_close(cuda_value, cpu_value, **TOL)
    for cuda_grad, cpu_grad in zip(cuda_grads, cpu_grads, strict=True):
        assert_same_grad(cuda_grad, cpu_grad)


def test_multi_range_all_pairs_cuda_equals_cpu(ieee_fp32):
    """``forward_all_pairs`` (the wrapper's ``metric_loss``) on N objects."""
    device = ieee_fp32
    loss = MultiRangeDepthMetricLoss()
    gen = torch.Generator().manual_seed(4)
    feats = torch.randn(120, 8, generator=gen, dtype=torch.float64)
    depths = 2 + 60 * torch.rand(120, generator=gen, dtype=torch.float64)
    i, j = torch.triu_indices(120, 120, offset=1)
    assert metric_kink_distance(loss, feats[i], feats[j], depths[i],
                                depths[j]) > KINK_MARGIN
    cpu_value, (cpu_grad, ) = value_and_grad(
        loss.forward_all_pairs, torch.device('cpu'), feats, depths)
    cuda_value, (cuda_grad, ) = value_and_grad(loss.forward_all_pairs,
                                               device, feats, depths)
    torch.testing.assert_close(cuda_value, cpu_value, **TOL)
    assert_same_grad(cuda_grad, cpu_grad)


def test_dense_shifted_pairs_cuda_equals_cpu(ieee_fp32):
    """The dense metric loss: ``collect_shifted_pairs`` on a feature map
    and a depth map with invalid cells, then the loss."""
    device = ieee_fp32
    gen = torch.Generator().manual_seed(5)
    feats = torch.randn(2, 8, 24, 32, generator=gen, dtype=torch.float64)
    depth = 2 + 40 * torch.rand(2, 24, 32, generator=gen,
                                dtype=torch.float64)
    depth[:, :5] = 0.0  # background rows
    depth[0, 10:12, 3:9] = float('nan')
    loss = MultiRangeDepthMetricLoss()

    def dense(f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        pairs = collect_shifted_pairs(f, z, unit_size=2,
                                      shifts=((-2, -1), (1, 2)),
                                      cross_image=True)
        for tensor in pairs:
            assert tensor.device == f.device
        return loss(*pairs)

    with torch.no_grad():
        pairs = collect_shifted_pairs(feats, depth, unit_size=2,
                                      shifts=((-2, -1), (1, 2)))
    assert pairs[0].shape[0] > 100
    assert metric_kink_distance(loss, *pairs) > KINK_MARGIN
    cpu_value, (cpu_grad, ) = value_and_grad(dense, torch.device('cpu'),
                                             feats, depth)
    cuda_value, (cuda_grad, ) = value_and_grad(dense, device, feats, depth)
    torch.testing.assert_close(cuda_value, cpu_value, **TOL)
    assert_same_grad(cuda_grad, cpu_grad)


# (x, y_bottom, z, l, h, w, yaw, label) in camera coordinates
OBJECTS = [
    [(-4., 1.6, 12., 3.9, 1.6, 1.6, 0.3, 2),
     (3., 1.7, 25., 0.8, 1.8, 0.6, -1.0, 0),
     (0.5, 1.6, 40., 4.2, 1.5, 1.7, 1.2, 2),
     (1., 1.6, 70., 4., 1.5, 1.6, 0., 2)],
    [(2., 1.6, 8., 1.8, 1.7, 0.6, 2.0, 1),
     (-6., 1.6, 30., 4., 1.5, 1.6, -0.4, 2)],
]
CAM2IMG = [[180., 0., 160., 0.], [0., 180., 48., 0.], [0., 0., 1., 0.],
           [0., 0., 0., 1.]]
IMG_HW = (96, 320)


@pytest.mark.parametrize('samples_on', ['cpu', 'cuda'])
def test_descriptor_gather_and_depth_painter_on_cuda(
        cuda_device, samples_on):
    """Descriptors gathered from a CUDA map and the painted depth targets
    stay on the map's device, from ground truth on either device, and
    equal the CPU's."""
    device = cuda_device
    samples = make_samples(OBJECTS, CAM2IMG, IMG_HW)
    gen = torch.Generator().manual_seed(6)
    feat = torch.randn(2, 16, 24, 80, generator=gen, dtype=torch.float64)
    stride = infer_feature_stride(IMG_HW, feat.shape[-2:])

    def collect(feat_, samples_, device_):
        objects = collect_object_descriptors(
            feat_, [s.gt_instances_3d for s in samples_], stride)
        targets = paint_batch_depth_targets(samples_, feat_.shape[-2:],
                                            stride, 2.0, 65.0, device_)
        return objects, targets

    cpu_objects, cpu_targets = collect(feat, samples, torch.device('cpu'))
    on = [s.to(samples_on if samples_on == 'cpu' else device)
          for s in samples]
    objects, targets = collect(feat.to(device), on, device)
    assert cpu_objects.num_objects == 5  # the 70 m Car is out of range
    for name in ('descriptors', 'depths', 'image_ids'):
        value = getattr(objects, name)
        assert value.device.type == 'cuda', name
        torch.testing.assert_close(value.cpu(), getattr(cpu_objects, name),
                                   rtol=1e-12, atol=1e-12)
    assert targets.device.type == 'cuda'
    assert targets.shape == (2, 24, 80)
    assert (cpu_targets > 0).sum() > 50
    torch.testing.assert_close(targets.cpu(), cpu_targets, rtol=0, atol=0)
