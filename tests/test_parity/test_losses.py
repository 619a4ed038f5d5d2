"""MonoDLE's loss terms: ddml against the release's own loss functions.

Values and gradients on the same random predictions and targets (float64)
for each term of xinzhuma/monodle's ``lib/losses/`` (``focal_loss.py``,
``uncertainty_loss.py``, ``dim_aware_loss.py``, ``centernet_loss.py``),
called as the release calls them, against the loss modules
``MonoDLEHead`` builds, called as ``MonoDLEHead.loss_by_feat`` calls them;
and the whole per-term dict of ``compute_centernet3d_loss`` against
``MonoDLEHead.loss_by_feat`` on one KITTI frame encoded by each side. From
DDML's release (mingyuShin/DDML-M3DOD): its object depth loss against
``ObjectDepthMapHead``'s, and what it feeds its quasi-isometric loss
(pooled descriptors, depths) against ``collect_object_descriptors``. (The
quasi-isometric loss itself: tests/test_models/test_losses/
test_qi_official_vs_release.py.)

The one difference is by design and measured: the release writes the
Laplacian loss's constant sqrt(2) as 1.4142, ddml uses ``math.sqrt(2)``.
"""
import math
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
from mmdet.models.utils import gen_gaussian_target

from ddml.data_tools.synthetic_kitti import KITTI_P2
from ddml.testing.reference import (CLASS_SWAP, RELEASE_FEAT_HW,
                                    mmdet3d_kitti_dataset,
                                    parity_monodle_head, parity_scene,
                                    release_dataset, release_targets,
                                    write_kitti_root)

#: The release's constant for sqrt(2) (``uncertainty_loss.py``).
RELEASE_SQRT2 = 1.4142
#: ddml's (l, h, w) -> the release's (h, w, l).
LHW_TO_HWL = [1, 2, 0]


@pytest.fixture(autouse=True)
def _cpu_cuda(monkeypatch) -> None:
    """``compute_heading_loss`` builds its one-hot with ``.cuda()``: make
    that a no-op so that the release's code runs on the CPU."""
    monkeypatch.setattr(torch.Tensor, 'cuda', lambda self, *a, **k: self)


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone().double().requires_grad_(True)


def _value_and_grad(fn: Callable, *leaves: torch.Tensor
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """``fn(*copies)`` and the gradients of its value wrt the copies."""
    copies = [_leaf(x) for x in leaves]
    value = fn(*copies)
    grads = torch.autograd.grad(value, copies, allow_unused=True)
    grads = [torch.zeros_like(c) if g is None else g
             for c, g in zip(copies, grads)]
    return value.detach(), grads


def _random_heatmap(gen: torch.Generator,
                    shape: Tuple[int, ...] = (2, 3, 12, 20),
                    peaks: int = 5) -> torch.Tensor:
    """A Gaussian heatmap target with ``peaks`` peaks of radius 0-3."""
    target = torch.zeros(shape, dtype=torch.float64)
    b, c, h, w = shape
    for _ in range(peaks):
        i, k = (int(torch.randint(n, (1, ), generator=gen)) for n in (b, c))
        x, y, r = (int(torch.randint(n, (1, ), generator=gen))
                   for n in (w, h, 4))
        gen_gaussian_target(target[i, k], [x, y], r)
    return target


@pytest.mark.parametrize('peaks', [0, 1, 7])
def test_focal_loss(monodle_lib, peaks):
    """CornerNet's focal loss (``focal_loss_cornernet``, on the clamped
    sigmoid as ``compute_segmentation_loss``) against ``MonoDLEHead``'s
    ``loss_heatmap`` (mmdet's ``GaussianFocalLoss`` averaged over the
    peaks, at least 1); gradient wrt the logits. Without a peak both sum
    the negative part."""
    gen = torch.Generator().manual_seed(peaks)
    logits = torch.randn(2, 3, 12, 20, generator=gen, dtype=torch.float64)
    logits[0, 0, 0, :4] = torch.tensor([12., -12., 9.3, -9.3])  # clamped
    target = _random_heatmap(gen, peaks=peaks)
    num_peaks = int(target.eq(1).sum())
    assert num_peaks == peaks
    head = parity_monodle_head()

    def ours(x):
        prob = x.sigmoid().clamp(1e-4, 1 - 1e-4)
        return head.loss_heatmap(prob, target, avg_factor=max(1, num_peaks))

    def release(x):
        return monodle_lib.focal.focal_loss_cornernet(
            torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4), target)

    value, (grad, ) = _value_and_grad(ours, logits)
    ref, (ref_grad, ) = _value_and_grad(release, logits)
    # mmdet divides by avg_factor + float32's eps (1.2e-7) and adds 1e-12
    # inside its logs (1e-9 relative at p = 1e-4)
    avg = max(1, num_peaks)
    shrink = avg / (avg + torch.finfo(torch.float32).eps)
    assert float(value) == pytest.approx(float(ref) * shrink, rel=1e-8)
    torch.testing.assert_close(grad, ref_grad * shrink, rtol=1e-8,
                               atol=1e-12)


def test_laplacian_depth_loss(monodle_lib):
    """Laplacian aleatoric uncertainty loss on depths decoded as the head
    decodes them, against ``laplacian_aleatoric_uncertainty_loss``.

    By design the constant differs (release 1.4142, ddml sqrt(2)): the
    loss is larger here by exactly
    ``(sqrt(2) - 1.4142) * mean(exp(-s) |d - d*|)`` and the gradient wrt
    the depth is ``sqrt(2) / 1.4142 = 1 + 9.6e-6`` times the release's.
    Measured on these inputs: 9.59e-6 of the loss.
    """
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(200, generator=gen, dtype=torch.float64)
    log_sigma = torch.randn(200, generator=gen, dtype=torch.float64)
    target = torch.rand(200, generator=gen, dtype=torch.float64) * 60 + 2
    head = parity_monodle_head()
    decode = head.bbox_coder.depth_from_raw

    value, (g_raw, g_sigma) = _value_and_grad(
        lambda o, s: head.loss_depth(decode(o), target, s), raw, log_sigma)
    ref, (r_raw, r_sigma) = _value_and_grad(
        lambda o, s: monodle_lib.uncertainty.
        laplacian_aleatoric_uncertainty_loss(
            1. / (o.sigmoid() + 1e-6) - 1., target, s), raw, log_sigma)
    term = (torch.exp(-log_sigma) * (decode(raw) - target).abs()).mean()
    gap = math.sqrt(2) - RELEASE_SQRT2
    assert float(value - ref) == pytest.approx(gap * float(term), rel=1e-9)
    assert float((value - ref) / ref) == pytest.approx(9.59e-6, abs=1e-8)
    torch.testing.assert_close(g_raw, r_raw * math.sqrt(2) / RELEASE_SQRT2,
                               rtol=1e-12, atol=0)
    per_elem = torch.exp(-log_sigma) * (decode(raw) - target).abs()
    torch.testing.assert_close(g_sigma - r_sigma, -gap * per_elem / 200,
                               rtol=1e-9, atol=1e-18)


@pytest.mark.parametrize('num', [1, 2, 40])
def test_dimension_aware_loss(monodle_lib, num):
    """``dim_aware_l1_loss(input, target, target)`` (as
    ``compute_size3d_loss`` calls it with absolute sizes) against
    ``MonoDLEHead``'s ``loss_size_3d`` (``DimensionAwareL1Loss``): equal
    value (the plain L1) and gradient (each side weighted by the
    compensation over its length)."""
    gen = torch.Generator().manual_seed(num)
    target = torch.rand(num, 3, generator=gen, dtype=torch.float64) * 4 + .3
    pred = target + torch.randn(num, 3, generator=gen,
                                dtype=torch.float64) * 0.3
    head = parity_monodle_head()
    value, (grad, ) = _value_and_grad(
        lambda p: head.loss_size_3d(p, target), pred)
    ref, (ref_grad, ) = _value_and_grad(
        lambda p: monodle_lib.dim_aware.dim_aware_l1_loss(p, target, target),
        pred)
    assert float(value) == pytest.approx(float(ref), rel=1e-12)
    assert float(value) == pytest.approx(float((pred - target).abs().mean()),
                                         rel=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-15)


def _gathered(out: torch.Tensor, indices: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """``out[b, :, y, x]`` of the masked objects, as
    ``MonoDLEHead.loss_by_feat`` gathers (cells from the flat index)."""
    width = out.shape[-1]
    b = torch.arange(indices.shape[0])[:, None].expand_as(indices)[mask]
    flat = indices[mask]
    return out[b, :, flat // width, flat % width]


def _random_objects(gen: torch.Generator,
                    batch: int = 2,
                    objects: int = 6,
                    hw: Tuple[int, int] = (12, 20)
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat cell indices (B, K) and a mask with some objects off."""
    indices = torch.randint(hw[0] * hw[1], (batch, objects), generator=gen)
    mask = torch.rand(batch, objects, generator=gen) < 0.7
    mask[0, 0] = True
    return indices, mask


def test_heading_loss(monodle_lib):
    """``compute_heading_loss`` (cross-entropy over 12 bins + L1 on the
    ground-truth bin's residual, over ``mask_2d``) against
    ``MonoDLEHead``'s ``loss_heading`` on the same cells; gradient wrt
    the heading map."""
    gen = torch.Generator().manual_seed(3)
    heading = torch.randn(2, 24, 12, 20, generator=gen, dtype=torch.float64)
    indices, mask = _random_objects(gen)
    bins = torch.randint(12, (2, 6, 1), generator=gen)
    res = (torch.rand(2, 6, 1, generator=gen, dtype=torch.float64) - .5) * \
        2 * math.pi / 12
    head = parity_monodle_head()

    def ours(h):
        out = _gathered(h, indices, mask)
        return head.loss_heading(out[:, :12], out[:, 12:], bins[mask][:, 0],
                                 res[mask][:, 0])

    def release(h):
        return monodle_lib.centernet.compute_heading_loss(
            dict(heading=h),
            dict(indices=indices, heading_bin=bins, heading_res=res,
                 mask_2d=mask))

    value, (grad, ) = _value_and_grad(ours, heading)
    ref, (ref_grad, ) = _value_and_grad(release, heading)
    assert float(value) == pytest.approx(float(ref), rel=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize('term,mask_key', [('offset2d', 'mask_2d'),
                                           ('size2d', 'mask_2d'),
                                           ('offset3d', 'mask_3d')])
def test_l1_terms(monodle_lib, term, mask_key):
    """``compute_{offset2d,size2d,offset3d}_loss`` (``F.l1_loss`` over the
    masked objects) against ``MonoDLEHead``'s ``mmdet.L1Loss`` terms on the
    same cells; gradient wrt the output map."""
    gen = torch.Generator().manual_seed(len(term))
    out = torch.randn(2, 2, 12, 20, generator=gen, dtype=torch.float64)
    indices, mask = _random_objects(gen)
    target = torch.randn(2, 6, 2, generator=gen, dtype=torch.float64) * 3
    name = dict(offset2d='offset_2d', size2d='size_2d',
                offset3d='offset_3d')[term]
    head = parity_monodle_head()
    loss = getattr(head, f'loss_{name}')
    value, (grad, ) = _value_and_grad(
        lambda o: loss(_gathered(o, indices, mask), target[mask]), out)
    fn = getattr(monodle_lib.centernet, f'compute_{term}_loss')
    ref, (ref_grad, ) = _value_and_grad(
        lambda o: fn({name: o}, {name: target, 'indices': indices,
                                 mask_key: mask}), out)
    assert float(value) == pytest.approx(float(ref), rel=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-15)


@pytest.fixture(scope='module')
def encoded_frame(tmp_path_factory, monodle_release) -> tuple:
    """The parity scene encoded by each side: the release's targets as a
    batch of one (torch, as its DataLoader gives them, masks as bool) and
    ddml's packed sample. The camera has no ``P2[2, 3]``, so that the two
    encodings are equal (test_target_encoding.py measures the 3D offsets
    the release's projection moves with KITTI's)."""
    camera = KITTI_P2.copy()
    camera[2, 3] = 0.
    root = write_kitti_root(tmp_path_factory.mktemp('parity_losses'),
                            [parity_scene()], camera)
    rel = release_targets(release_dataset(root))
    batch = {k: torch.from_numpy(np.asarray(v))[None] for k, v in rel.items()}
    for key in ('mask_2d', 'mask_3d'):
        batch[key] = batch[key].bool()
    sample = mmdet3d_kitti_dataset(root)[0]['data_samples']
    return batch, sample


def _release_terms(centernet, outputs: Dict[str, torch.Tensor],
                   targets: Dict[str, torch.Tensor]
                   ) -> Dict[str, torch.Tensor]:
    """The seven terms of ``compute_centernet3d_loss``, by its own
    functions (what it sums), on a fresh dict of the outputs (its
    segmentation loss applies ``sigmoid_`` in place)."""
    inputs = dict(outputs)
    inputs['heatmap'] = outputs['heatmap'] * 1.
    return dict(
        heatmap=centernet.compute_segmentation_loss(inputs, targets),
        offset_2d=centernet.compute_offset2d_loss(inputs, targets),
        size_2d=centernet.compute_size2d_loss(inputs, targets),
        offset_3d=centernet.compute_offset3d_loss(inputs, targets),
        depth=centernet.compute_depth_loss(inputs, targets),
        size_3d=centernet.compute_size3d_loss(inputs, targets),
        heading=centernet.compute_heading_loss(inputs, targets))


def test_whole_loss_dict(monodle_lib, encoded_frame):
    """The release's per-term loss dict against
    ``MonoDLEHead.loss_by_feat`` on the same random outputs (float32, as
    in training), each side on its own encoding of the same frame: every
    term and its gradient wrt the seven output maps agree, the depth term
    up to the 1.4142 constant (relative 1e-5), the others to 2e-5 (the
    two float32 encodings agree to 1e-5 cells). The release's own
    ``compute_centernet3d_loss`` total equals the sum of ddml's terms."""
    targets, sample = encoded_frame
    head = parity_monodle_head()
    gen = torch.Generator().manual_seed(5)
    shapes = dict(heatmap=3, offset_2d=2, size_2d=2, depth=2, offset_3d=2,
                  size_3d=3, heading=24)
    outputs = {k: torch.randn((1, c) + RELEASE_FEAT_HW, generator=gen)
               for k, c in shapes.items()}
    outputs['size_2d'] = outputs['size_2d'] * 3 + 10
    outputs['size_3d'] = outputs['size_3d'] * .3 + 2.
    outputs['heatmap'] = outputs['heatmap'] - 2.

    ours_leaves = {k: v.clone().requires_grad_(True)
                   for k, v in outputs.items()}
    ours = head.loss_by_feat(
        *[ours_leaves[k] for k in shapes],
        batch_gt_instances_3d=[sample.gt_instances_3d],
        batch_gt_instances=[sample.gt_instances],
        batch_img_metas=[sample.metainfo])
    rel_leaves = {k: v.clone().requires_grad_(True)
                  for k, v in outputs.items()}
    # ddml's channels -> the release's: class order, sizes (h, w, l)
    rel_inputs = dict(rel_leaves)
    rel_inputs['heatmap'] = rel_leaves['heatmap'][:, CLASS_SWAP]
    rel_inputs['size_3d'] = rel_leaves['size_3d'][:, LHW_TO_HWL]
    rel = _release_terms(monodle_lib.centernet, rel_inputs, targets)
    assert int(targets['mask_2d'].sum()) == 5
    for name, ref in rel.items():
        value = ours[f'loss_{name}']
        # float32 targets agree to 1e-5 cells; the depth constant: 1e-5
        tol = 3e-5 if name == 'depth' else 2e-5
        assert float(value) == pytest.approx(float(ref), rel=tol), name
        grads = torch.autograd.grad(value, list(ours_leaves.values()),
                                    allow_unused=True)
        ref_grads = torch.autograd.grad(ref, list(rel_leaves.values()),
                                        allow_unused=True)
        for key, g, r in zip(ours_leaves, grads, ref_grads):
            g = torch.zeros_like(ours_leaves[key]) if g is None else g
            r = torch.zeros_like(rel_leaves[key]) if r is None else r
            scale = float(r.abs().max()) + 1e-12
            assert float((g - r).abs().max()) <= tol * scale, (name, key)
    total_inputs = {k: v.detach().clone() for k, v in rel_inputs.items()}
    total, stats = monodle_lib.centernet.compute_centernet3d_loss(
        total_inputs, targets)
    assert float(total) == pytest.approx(
        sum(float(v) for v in ours.values()), rel=2e-5)
    assert set(stats) == {'seg', 'offset2d', 'size2d', 'offset3d', 'depth',
                          'size3d', 'heading'}


def test_object_depth_loss(ddml_release):
    """DDML's ``compute_obj_depth_loss`` (on a target map already at the
    feature size, so that its bilinear resize is the identity) against
    ``ObjectDepthMapHead.loss_by_feat``: the Laplacian loss over the
    painted cells, up to the release's 1.4142 (by design, as the depth
    term above). Measured here: 9.55e-6 of the value; the gradient wrt the
    depth logits is sqrt(2) / 1.4142 times the release's."""
    from mmdet3d.registry import MODELS

    from ddml.testing.reference import import_release_module
    centernet = import_release_module('ddml', 'lib.losses.centernet_loss')
    gen = torch.Generator().manual_seed(11)
    shape = (2, 1, 12, 20)
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) - 3.
    log_vars = torch.randn(shape, generator=gen, dtype=torch.float64) * .5
    targets = torch.rand(2, 12, 20, generator=gen, dtype=torch.float64)
    targets = torch.where(targets < 0.6, torch.zeros_like(targets),
                          targets * 60 + 2)
    head = MODELS.build(dict(type='ObjectDepthMapHead', in_channels=1))

    value, (g_logit, g_var) = _value_and_grad(
        lambda x, s: head.loss_by_feat(x, s, targets)['loss_obj_depth'],
        logits, log_vars)
    ref, (r_logit, r_var) = _value_and_grad(
        lambda x, s: centernet.compute_obj_depth_loss(
            dict(obj_depth=torch.cat([x, s], 1)), dict(obj_depth=targets),
            torch.zeros(2, 1, 12, 20)), logits, log_vars)
    # ddml computes in float32
    assert float((value - ref) / ref) == pytest.approx(9.55e-6, abs=2e-7)
    torch.testing.assert_close(g_logit,
                               r_logit * math.sqrt(2) / RELEASE_SQRT2,
                               rtol=1e-5, atol=1e-9)
    assert float((g_var - r_var).abs().max()) < 1e-5 * float(
        r_var.abs().max())


def test_qi_descriptors_and_depths(ddml_release, encoded_frame):
    """What DDML's release feeds its quasi-isometric loss
    (``compute_centernet3d_loss`` with ``qi``: the 5x5-average-pooled
    feature map at each kept object's heatmap cell, and the object depths)
    against ``collect_object_descriptors`` (what
    ``DepthDiscriminativeDetector`` feeds ``QuasiIsometricLoss``) on the
    same frame: the same 5 objects, descriptors and depths. The release's
    loss function is replaced by a recorder."""
    from ddml.models.descriptors import collect_object_descriptors
    from ddml.testing.reference import load_definitions
    targets, sample = encoded_frame
    recorded = {}

    def record(feat, dep_tar, K, B, rad, temperature=10.0):
        recorded.update(feat=feat, depth=dep_tar)
        return feat.sum() * 0.

    names = ['compute_centernet3d_loss', 'compute_obj_depth_loss',
             'compute_segmentation_loss', 'compute_size2d_loss',
             'compute_offset2d_loss', 'compute_depth_loss',
             'compute_offset3d_loss', 'compute_size3d_loss',
             'compute_heading_loss', 'extract_input_from_tensor',
             'extract_target_from_tensor']
    ns = load_definitions('ddml', 'lib/losses/centernet_loss.py', names,
                          namespace=dict(_update_K_return_loss=record))
    gen = torch.Generator().manual_seed(2)
    shapes = dict(heatmap=3, offset_2d=2, size_2d=2, depth=2, offset_3d=2,
                  size_3d=3, heading=24)
    outputs = {k: torch.randn((1, c) + RELEASE_FEAT_HW, generator=gen)
               for k, c in shapes.items()}
    feat = torch.randn((1, 16) + RELEASE_FEAT_HW, generator=gen)
    ns.compute_centernet3d_loss(outputs, targets, feat, 1.5, 0.5, 10.,
                                qi=True, obj=False)
    ours = collect_object_descriptors(feat, [sample.gt_instances_3d],
                                      (4., 4.))
    theirs_depth = recorded['depth'][:, 0]
    assert len(ours.depths) == len(theirs_depth) == 5
    order_ours = torch.argsort(ours.depths)
    order_theirs = torch.argsort(theirs_depth)
    torch.testing.assert_close(ours.depths[order_ours],
                               theirs_depth[order_theirs])
    torch.testing.assert_close(ours.descriptors[order_ours],
                               recorded['feat'][order_theirs], rtol=1e-5,
                               atol=1e-6)
