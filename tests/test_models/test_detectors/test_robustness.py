"""Degenerate input, mixed precision and 2-process gathering (issue 8).

Degenerate batches go through the real wrapper around the real demo
detector (``configs/demo/ddml_smoke_...``: SMOKE's head on a half-width
ResNet-18 + SECONDFPN, no pretrained weights) with a shrunk 64x192 input
and hand-made :obj:`Det3DDataSample`s. Every loss must be finite, attached
to the graph, and backward must give finite gradients.

Two inputs crash mmdet3d 1.4's own SMOKE head (not the wrapper), so those
cases feed the head only what mmdet3d's training pipeline would deliver:

* a batch without any object: ``SMOKEMono3DHead.get_targets`` calls
  ``torch.cat`` on the (empty) list of per-image boxes. In training
  ``Det3DDataset`` (``filter_empty_gt=True`` by default, which the demo
  configs keep) drops frames without GT, so SMOKE never sees such a batch;
* projected centres off the image: ``gen_gaussian_target`` slices the
  heatmap with negative bounds. ``AffineResize`` (the SMOKE pipeline) drops
  those objects before packing.
"""
import copy
import inspect
import os

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.config import Config  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmdet3d.registry import MODELS  # noqa: E402
from mmdet3d.structures import Det3DDataSample  # noqa: E402
from mmdet3d.utils import register_all_modules  # noqa: E402

import ddml  # noqa: E402,F401  (registration)
from ddml.models.descriptors import infer_feature_stride  # noqa: E402
from ddml.models.losses import (MultiRangeDepthMetricLoss,  # noqa: E402
                                QuasiIsometricLoss)
from ddml.testing import make_samples as _make_samples  # noqa: E402
from ddml.testing import run_in_gloo_processes  # noqa: E402

register_all_modules(init_default_scope=True)

REPO = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..', '..'))
DEMO_CFG = os.path.join(
    REPO, 'configs', 'demo',
    'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py')
H, W = 64, 192
CAM2IMG = [[112., 0., 96., 0.], [0., 112., 32., 0.], [0., 0., 1., 0.],
           [0., 0., 0., 1.]]
AUX_KEYS = ('loss_qi', 'loss_obj_depth')
NAMES = ('x', 'y', 'z', 'l', 'h', 'w', 'yaw', 'label')
# (x, y_bottom, z, l, h, w, yaw, label) in camera coordinates
CAR = (0., 1.6, 20., 3.9, 1.6, 1.6, 0., 2)


def moved(obj=CAR, **changes):
    values = dict(zip(NAMES, obj, strict=True))
    values.update(changes)
    return tuple(values[n] for n in NAMES)


def make_samples(objects, stride=4):
    """Det3DDataSamples with 3D boxes, projected centres and 2D boxes."""
    return _make_samples(objects, CAM2IMG, (H, W), stride=stride)


def make_inputs(batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(imgs=torch.randn(batch, 3, H, W, generator=gen))


@pytest.fixture(scope='module')
def demo_model():
    cfg = Config.fromfile(DEMO_CFG).model
    assert cfg.type == 'DepthDiscriminativeDetector'
    cfg.detector.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    return model


def check_step(model, losses, keys=None):
    """Every loss finite and attached; backward gives finite gradients."""
    keys = set(losses) if keys is None else set(keys)
    assert set(AUX_KEYS) <= set(losses)
    for key in keys:
        value = losses[key]
        assert value.dim() == 0, key
        assert torch.isfinite(value), (key, value)
        assert value.requires_grad and value.grad_fn is not None, key
    for key in AUX_KEYS:
        assert losses[key].dtype == torch.float32, key
    model.zero_grad(set_to_none=True)
    sum(losses[k] for k in keys).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads
    for grad in grads:
        assert torch.isfinite(grad).all()
    # the auxiliary losses reach the shared neck and their own head
    assert model.detector.neck.deblocks[0][0].weight.grad is not None
    assert model.depth_map_head.conv.weight.grad is not None


def record_qi_inputs(model):
    """Hook that records (descriptors, depths) handed to the QI loss."""
    calls = []

    def hook(module, args):
        calls.append((args[0].detach().clone(), args[1].detach().clone()))

    return calls, model.qi_loss.register_forward_pre_hook(hook)


def test_some_images_without_objects(demo_model):
    objects = [[CAR, moved(z=28., x=2.)], [], [moved(z=12., x=-1.)]]
    losses = demo_model.loss(make_inputs(3), make_samples(objects))
    check_step(demo_model, losses)
    assert losses['loss_qi'] > 0 and losses['loss_obj_depth'] > 0


def test_one_object(demo_model):
    losses = demo_model.loss(make_inputs(1), make_samples([[CAR]]))
    check_step(demo_model, losses)
    assert losses['loss_qi'] == 0  # no pair


def test_all_depths_equal(demo_model):
    objects = [[CAR, moved(x=3.)], [moved(x=-3.)]]
    calls, handle = record_qi_inputs(demo_model)
    try:
        losses = demo_model.loss(make_inputs(2), make_samples(objects))
    finally:
        handle.remove()
    check_step(demo_model, losses)
    assert calls[0][0].shape[0] == 3
    assert losses['loss_qi'] == 0  # no pair with 0 < depth difference


def test_non_finite_depths(demo_model):
    """nan/inf in ``gt_instances_3d.depths`` (the 3D boxes stay finite, so
    SMOKE's own losses are defined): the wrapper drops those objects from
    the descriptors and the painted depth map."""
    objects = [[CAR, moved(z=25., x=2.), moved(z=30., x=-2.)],
               [moved(z=15.), moved(z=22., x=3.)]]
    samples = make_samples(objects)
    samples[0].gt_instances_3d.depths[0] = float('nan')
    samples[0].gt_instances_3d.depths[2] = float('inf')
    samples[1].gt_instances_3d.depths[0] = -float('inf')
    calls, handle = record_qi_inputs(demo_model)
    dropped = demo_model.qi_loss.num_dropped_rows
    try:
        losses = demo_model.loss(make_inputs(2), samples)
    finally:
        handle.remove()
    check_step(demo_model, losses)
    assert calls[0][1].tolist() == pytest.approx([25., 22.])
    # filtered before the loss, which therefore had nothing to drop
    assert demo_model.qi_loss.num_dropped_rows == dropped


def _centres_on_image(sample):
    """Keep the objects whose centre is on the image, as AffineResize."""
    centers = sample.gt_instances_3d.centers_2d
    keep = (centers[:, 0] > 0) & (centers[:, 0] < W) & \
        (centers[:, 1] > 0) & (centers[:, 1] < H)
    out = copy.deepcopy(sample)
    out.gt_instances_3d = sample.gt_instances_3d[keep]
    out.gt_instances = sample.gt_instances[keep]
    return out


def test_centres_off_the_image(demo_model, monkeypatch):
    """SMOKE's head crashes on off-image centres (its pipeline drops them),
    so it sees the on-image objects only; the wrapper sees all of them and
    must give the descriptor losses of the on-image objects."""
    head = demo_model.detector.bbox_head
    off = [[CAR, moved(x=-40.), moved(z=27., x=2.), moved(y=30.)],
           [moved(x=60.), moved(z=14.)]]
    samples = make_samples(off)
    feats = demo_model.extract_feat(make_inputs(2))
    with pytest.raises(RuntimeError, match='size of tensor'):
        head.loss(feats, samples)

    original = head.loss
    monkeypatch.setattr(
        head, 'loss', lambda feats, data_samples: original(
            feats, [_centres_on_image(s) for s in data_samples]))
    calls, handle = record_qi_inputs(demo_model)
    try:
        losses = demo_model.loss(make_inputs(2), samples)
        # the same batch without the off-image objects
        ref = demo_model.loss(make_inputs(2),
                              [_centres_on_image(s) for s in samples])
    finally:
        handle.remove()
    assert calls[0][1].tolist() == pytest.approx([20., 27., 14.])
    assert torch.equal(calls[0][0], calls[1][0])
    assert losses['loss_qi'] == ref['loss_qi'] > 0
    check_step(demo_model, losses)


def test_batch_without_any_object(demo_model):
    """A whole batch without objects crashes mmdet3d's SMOKE head
    (``torch.cat`` of the empty list of boxes in ``get_targets``), before
    any DDML code runs. It cannot happen in training with mmdet3d's
    datasets: ``Det3DDataset`` has ``filter_empty_gt=True`` by default (the
    demo config keeps it), so frames without GT are dropped. The wrapper's
    own auxiliary path (``loss_auxiliary`` on the real features) must
    still give finite, attached zeros for a head that copes with it."""
    from mmdet3d.datasets import KittiDataset
    default = inspect.signature(KittiDataset).parameters['filter_empty_gt']
    assert default.default is True
    train_set = Config.fromfile(DEMO_CFG).train_dataloader.dataset
    assert train_set.get('filter_empty_gt', True) is True

    inputs, samples = make_inputs(2), make_samples([[], []])
    feats = demo_model.extract_feat(inputs)
    with pytest.raises(ValueError, match='non-empty list'):
        demo_model.detector.bbox_head.loss(feats, samples)

    feat = demo_model.select_feature(feats)
    stride = infer_feature_stride(inputs['imgs'].shape[-2:],
                                  feat.shape[-2:])
    losses = demo_model.loss_auxiliary(feat, stride, samples)
    assert set(losses) == set(AUX_KEYS)
    for value in losses.values():
        assert value == 0
    check_step(demo_model, losses)


def _many_objects(num, gen):
    """``num`` cars whose centres are on the 64x192 image, 3..63 m."""
    u = torch.rand(num, generator=gen) * (W - 8) + 4
    v = torch.rand(num, generator=gen) * (H - 8) + 4
    z = torch.rand(num, generator=gen) * 60 + 3
    x = (u - CAM2IMG[0][2]) * z / CAM2IMG[0][0]
    y = (v - CAM2IMG[1][2]) * z / CAM2IMG[1][1] + 0.75  # bottom, h=1.5
    return [(float(a), float(b), float(c), 3.9, 1.5, 1.6, 0.3, 2)
            for a, b, c in zip(x, y, z, strict=True)]


def test_ten_thousand_objects_with_chunked_qi_loss(demo_model):
    gen = torch.Generator().manual_seed(0)
    objects = [_many_objects(2500, gen) for _ in range(4)]
    samples = make_samples(objects)
    calls, handle = record_qi_inputs(demo_model)
    chunk_size = demo_model.qi_loss.chunk_size
    demo_model.qi_loss.chunk_size = 1024
    try:
        losses = demo_model.loss(make_inputs(4), samples)
    finally:
        demo_model.qi_loss.chunk_size = chunk_size
        handle.remove()
    assert calls[0][0].shape == (10000, 64)
    assert losses['loss_qi'] > 0
    check_step(demo_model, losses)


# ----------------------------------------------------------------------
# mixed precision
# ----------------------------------------------------------------------
def test_bf16_autocast_loss_step(demo_model):
    objects = [[CAR, moved(z=30., x=2.)], [moved(z=12.), moved(z=16.)]]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = demo_model.loss(make_inputs(2), make_samples(objects))
        # the features really are bf16 under autocast
        feat = demo_model.extract_feat(make_inputs(2))[0]
    assert feat.dtype == torch.bfloat16
    for key in AUX_KEYS:
        assert losses[key].dtype == torch.float32
        assert losses[key] > 0
    check_step(demo_model, losses)


def test_fp16_large_descriptors_give_float32_results():
    gen = torch.Generator().manual_seed(0)
    # |f_i - f_j|^2 ~ 1e6 * C overflows float16 (max 65504)
    desc = (torch.randn(40, 16, generator=gen) * 1e3).half()
    depths = torch.rand(40, generator=gen) * 40 + 5
    losses = dict(
        qi=QuasiIsometricLoss(),
        qi_official=QuasiIsometricLoss(mode='official', loss_weight=0.5),
        metric=MultiRangeDepthMetricLoss().forward_all_pairs)
    for name, loss_fn in losses.items():
        x = desc.clone().requires_grad_(True)
        value = loss_fn(x, depths)
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), (name, value)
        # 'official' is zero here: no pair is too close (L is empty)
        assert value > 0 or name == 'qi_official', (name, value)
        # the same as on the float32 copy: computed in float32 throughout
        ref = loss_fn(desc.float(), depths)
        assert value.item() == pytest.approx(ref.item(), rel=1e-5), name
        value.backward()
        assert x.grad.dtype == torch.float16
        assert torch.isfinite(x.grad).all(), name
    pairs = MultiRangeDepthMetricLoss()(desc[:20], desc[20:], depths[:20],
                                        depths[20:])
    assert pairs.dtype == torch.float32 and torch.isfinite(pairs)


# ----------------------------------------------------------------------
# 2 gloo processes == 1 process holding the concatenated batch
# ----------------------------------------------------------------------
# tests/test_models/test_descriptors.py checks the gather itself with a
# weighted sum; here the QI loss runs on the gathered descriptors.
COUNTS = (5, 3)  # uneven objects per process


def _qi_batch():
    gen = torch.Generator().manual_seed(7)
    num = sum(COUNTS)
    desc = torch.randn(num, 8, generator=gen, dtype=torch.float64).float()
    depths = torch.rand(num, generator=gen) * 12 + 5
    return desc, depths


def _qi_worker(rank, world_size):
    from ddml.models.descriptors import (ObjectDescriptors,
                                         gather_object_descriptors)
    desc, depths = _qi_batch()
    start = sum(COUNTS[:rank])
    stop = start + COUNTS[rank]
    local = desc[start:stop].clone().requires_grad_(True)
    objs = ObjectDescriptors(local, depths[start:stop],
                             torch.zeros(COUNTS[rank], dtype=torch.long),
                             torch.zeros(COUNTS[rank], dtype=torch.long))
    gathered = gather_object_descriptors(objs, num_images=1)
    loss = QuasiIsometricLoss(eps=6.0)(gathered.descriptors,
                                       gathered.depths)
    loss.backward()
    return loss.item(), local.grad.tolist()


def test_qi_loss_over_two_gloo_processes_equals_one_process():
    desc, depths = _qi_batch()
    full = desc.clone().requires_grad_(True)
    ref = QuasiIsometricLoss(eps=6.0)(full, depths)
    ref.backward()
    assert ref > 0 and full.grad.abs().sum() > 0

    results = run_in_gloo_processes(_qi_worker, 2)
    assert sorted(results) == [0, 1]
    for rank, (value, grad) in results.items():
        assert value == pytest.approx(ref.item(), abs=1e-5)
        start = sum(COUNTS[:rank])
        expected = full.grad[start:start + COUNTS[rank]]
        assert torch.allclose(torch.tensor(grad), expected, atol=1e-5)


# ----------------------------------------------------------------------
# tools/export_baseline.py loads through ddml's allow-list
# ----------------------------------------------------------------------
def _touch(path):
    """Side effect a malicious checkpoint would trigger when unpickled."""
    open(path, 'w').close()
    return {}


class _RunsCode:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return _touch, (self.path, )


def _export(monkeypatch, src, dst):
    import runpy
    import sys
    tool = os.path.join(REPO, 'tools', 'export_baseline.py')
    monkeypatch.setattr(sys, 'argv', ['export_baseline.py', str(src),
                                      str(dst)])
    runpy.run_path(tool, run_name='__main__')


def test_export_tool_refuses_code_and_keeps_numpy_meta(tmp_path,
                                                       monkeypatch):
    from ddml.compat import CheckpointRefusedError
    state = {'detector.w': torch.ones(2), 'depth_map_head.b': torch.zeros(1)}
    good = tmp_path / 'good.pth'
    torch.save(dict(meta=dict(seed=np.int64(3), hw=np.array([64, 192])),
                    state_dict=state, optimizer=dict(state={})), good)
    _export(monkeypatch, good, tmp_path / 'good_out.pth')
    out = torch.load(tmp_path / 'good_out.pth', weights_only=False)
    assert list(out['state_dict']) == ['w']
    assert out['meta']['seed'] == 3

    marker = tmp_path / 'code_ran'
    bad = tmp_path / 'bad.pth'
    torch.save(dict(meta=dict(hook=_RunsCode(str(marker))),
                    state_dict=state), bad)
    with pytest.raises(CheckpointRefusedError, match='bad.pth'):
        _export(monkeypatch, bad, tmp_path / 'bad_out.pth')
    assert not marker.exists()
    assert not (tmp_path / 'bad_out.pth').exists()


# ----------------------------------------------------------------------
# the wrapper's QI gradient under DDP == one process with the whole batch
# ----------------------------------------------------------------------
class _ConvDetector(torch.nn.Module):
    """Stand-in detector: one stride-4 conv, a head with one conv."""

    def __init__(self):
        super().__init__()
        from mmengine.model import BaseDataPreprocessor
        torch.manual_seed(0)
        self.data_preprocessor = BaseDataPreprocessor()
        self.backbone = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.bbox_head = torch.nn.Conv2d(8, 1, 1)
        self.bbox_head.in_channels = 8
        self.bbox_head.loss = lambda feats, samples: {}

    def extract_feat(self, inputs):
        return (self.backbone(inputs['imgs']), )


def _ddp_batch():
    """4 images of 32x64 (2 per process) with 3, 2, 0, 4 objects."""
    gen = torch.Generator().manual_seed(5)
    imgs = torch.randn(4, 3, 32, 64, generator=gen)
    samples = []
    for num in (3, 2, 0, 4):
        gt3d = InstanceData()
        gt3d.centers_2d = torch.rand(num, 2, generator=gen) * torch.tensor(
            [63., 31.])
        gt3d.depths = torch.rand(num, generator=gen) * 10 + 5
        gt3d.labels_3d = torch.zeros(num, dtype=torch.long)
        sample = Det3DDataSample()
        sample.gt_instances_3d = gt3d
        samples.append(sample)
    return imgs, samples


def _wrapper_qi_grad(imgs, samples):
    from ddml.models.detectors import DepthDiscriminativeDetector
    wrapper = DepthDiscriminativeDetector(
        detector=_ConvDetector(), qi_loss=dict(type='QuasiIsometricLoss',
                                               eps=6.0),
        depth_map_head=None)
    feat = wrapper.extract_feat(dict(imgs=imgs))[0]
    loss = wrapper.loss_auxiliary(feat, (4., 4.), samples)['loss_qi']
    loss.backward()
    return loss.item(), wrapper.detector.backbone.weight.grad


def _ddp_worker(rank, world_size):
    import torch.distributed as torch_dist
    imgs, samples = _ddp_batch()
    value, grad = _wrapper_qi_grad(imgs[2 * rank:2 * rank + 2],
                                   samples[2 * rank:2 * rank + 2])
    torch_dist.all_reduce(grad)  # what DDP does: the mean
    return value, (grad / world_size).tolist()


def test_wrapper_qi_gradient_under_ddp_equals_one_process():
    """Each process computes the global loss but back-propagates through
    its own descriptors only, and DDP averages gradients over processes;
    without a world-size scale the QI loss would weigh 1/world_size of
    what it does in one process holding the same batch."""
    imgs, samples = _ddp_batch()
    ref_value, ref_grad = _wrapper_qi_grad(imgs, samples)
    assert ref_value > 0

    results = run_in_gloo_processes(_ddp_worker, 2)
    assert sorted(results) == [0, 1]
    for value, grad in results.values():
        assert value == pytest.approx(ref_value, abs=1e-5)
        assert torch.allclose(torch.tensor(grad), ref_grad, atol=1e-5)
