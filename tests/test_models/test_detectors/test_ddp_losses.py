"""Gathered losses under DistributedDataParallel == one process with the
global batch (issue 16, item 2).

``loss_qi`` (both forms) and ``loss_metric`` compare the pairs of object
descriptors gathered from every process.  Each process computes the same
global loss but back-propagates through its own descriptors only, and DDP
averages the gradients; the wrapper scales the gradient by the world size
so that the result is what one process holding the whole batch gets.  Here
the wrapper runs inside torch's real ``DistributedDataParallel`` (gloo, 2
CPU processes, 2 images each) and every parameter's gradient, after DDP's
all-reduce, and every loss value are compared with one process that holds
the 4 images.
"""
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.structures import InstanceData  # noqa: E402

from mmdet3d.structures import Det3DDataSample  # noqa: E402

import ddml  # noqa: E402,F401  (registration)
from ddml.testing import run_in_gloo_processes  # noqa: E402

#: Objects per image; images 0-1 go to rank 0, 2-3 to rank 1.
OBJECTS = (3, 2, 0, 4)
CONFIGS = {
    'qi_hinge': dict(qi_loss=dict(type='QuasiIsometricLoss', eps=6.0)),
    'qi_official': dict(
        qi_loss=dict(type='QuasiIsometricLoss', mode='official', eps=6.0,
                     detach_target=True, loss_weight=0.5)),
    'metric': dict(
        qi_loss=None,
        metric_loss=dict(type='MultiRangeDepthMetricLoss', pos_radius=1.0,
                         neg_bounds=(1.5, 4.0), margins=(0.5, 1.0))),
    'qi_and_metric': dict(
        qi_loss=dict(type='QuasiIsometricLoss', eps=6.0),
        metric_loss=dict(type='MultiRangeDepthMetricLoss', pos_radius=1.0,
                         neg_bounds=(1.5, 4.0), margins=(0.5, 1.0))),
}


class _Head:
    """A head without parameters and without losses of its own."""
    in_channels = 8

    @staticmethod
    def loss(feats, samples):
        return {}


class _ConvDetector(torch.nn.Module):
    """Stand-in detector: a stride-4 conv and a stride-2 conv (every
    parameter takes part in the auxiliary losses, as DDP requires)."""

    def __init__(self):
        super().__init__()
        from mmengine.model import BaseDataPreprocessor
        torch.manual_seed(0)
        self.data_preprocessor = BaseDataPreprocessor()
        self.stem = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.layer = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bbox_head = _Head()

    def extract_feat(self, inputs):
        return (self.layer(torch.relu(self.stem(inputs['imgs']))), )


def _batch():
    """4 images of 32x64 and their objects (centres, depths 5-15 m)."""
    gen = torch.Generator().manual_seed(5)
    # x10: descriptor distances of 1-3, so that the official form has
    # pairs both too far apart (U) and too close (L)
    imgs = torch.randn(4, 3, 32, 64, generator=gen) * 10
    samples = []
    for num in OBJECTS:
        gt3d = InstanceData()
        gt3d.centers_2d = torch.rand(num, 2, generator=gen) * torch.tensor(
            [63., 31.])
        gt3d.depths = torch.rand(num, generator=gen) * 10 + 5
        gt3d.labels_3d = torch.zeros(num, dtype=torch.long)
        sample = Det3DDataSample()
        sample.gt_instances_3d = gt3d
        samples.append(sample)
    return imgs, samples


def _wrapper(name):
    from ddml.models.detectors import DepthDiscriminativeDetector
    return DepthDiscriminativeDetector(
        detector=_ConvDetector(), depth_map_head=None, descriptor_pool=3,
        **CONFIGS[name])


def _step(model, imgs, samples):
    """One forward in loss mode and backward of the summed losses."""
    losses = model(dict(imgs=imgs), samples, mode='loss')
    sum(losses.values()).backward()
    return {k: v.item() for k, v in losses.items()}


def _grads(wrapper):
    return {k: p.grad.clone() for k, p in wrapper.named_parameters()
            if p.grad is not None}


def _one_process(name):
    wrapper = _wrapper(name)
    imgs, samples = _batch()
    return _step(wrapper, imgs, samples), _grads(wrapper)


def _ddp_worker(rank, world_size):
    from torch.nn.parallel import DistributedDataParallel
    imgs, samples = _batch()
    mine = slice(2 * rank, 2 * rank + 2)
    out = {}
    for name in CONFIGS:
        wrapper = _wrapper(name)
        ddp = DistributedDataParallel(wrapper)
        values = _step(ddp, imgs[mine], samples[mine])
        out[name] = (values, {
            k: g.tolist()
            for k, g in _grads(wrapper).items()
        })
    return out


def test_gathered_losses_under_ddp_equal_one_process():
    reference = {name: _one_process(name) for name in CONFIGS}
    for name, (values, grads) in reference.items():
        assert values and all(v > 0 for v in values.values()), (name, values)
        assert set(grads) == {'detector.stem.weight', 'detector.stem.bias',
                              'detector.layer.weight', 'detector.layer.bias'}
        assert all(g.abs().sum() > 0 for g in grads.values()), name

    results = run_in_gloo_processes(_ddp_worker, 2, timeout=120)
    assert sorted(results) == [0, 1]
    for rank, per_config in results.items():
        for name, (values, grads) in per_config.items():
            ref_values, ref_grads = reference[name]
            assert set(values) == set(ref_values), (rank, name)
            for key, value in values.items():
                assert value == pytest.approx(ref_values[key], rel=1e-5,
                                              abs=1e-6), (rank, name, key)
            assert set(grads) == set(ref_grads), (rank, name)
            for key, grad in grads.items():
                ref = ref_grads[key]
                torch.testing.assert_close(
                    torch.tensor(grad), ref,
                    atol=1e-5 * float(ref.abs().max()), rtol=1e-4,
                    msg=lambda m: f'rank {rank}, {name}, {key}: {m}')
