"""Each fix of ddml.compat.monoflex*, against mmdet3d 1.4's own code.

Every test runs ddml's fixed version and, where the upstream version can be
called, shows the defect it fixes (open-mmlab/mmdetection3d #1652 for the
MultiBin loss; #1273/#1515/#2093/#3022 and PR #1183 for the head and coder
that never trained). Removing a fix (the override falls back to mmdet3d's
method) fails the test that names it.
"""
import math

import numpy as np
import pytest
import torch

import ddml  # noqa: F401  (registers the fixed classes)
from ddml.compat.monoflex import (border_intersection, ellip_gaussian_target,
                                  feature_camera, lift_to_camera)
from ddml.compat.monoflex_coder import (KEYPOINT_GROUPS, MONOFLEX_KITTI_DIMS,
                                        FixedMonoFlexCoder)
from ddml.compat.monoflex_losses import (FixedMultiBinLoss,
                                         multibin_orientation_loss)
from ddml.testing import make_samples
from mmdet3d.models.losses import MultiBinLoss
from mmdet3d.models.task_modules import MonoFlexCoder
from mmdet3d.models.utils import get_ellip_gaussian_2D
from mmdet3d.registry import MODELS
from mmdet3d.structures import CameraInstance3DBoxes
from mmdet3d.utils import register_all_modules

register_all_modules(init_default_scope=True)
torch.set_num_threads(1)

NB = 4
CENTRES = [0, math.pi / 2, math.pi, -math.pi / 2]
# a KITTI-like camera for a 320x96 input (feature map 80x24 at stride 4)
CAM = [[186.0, 0.0, 157.0, 11.6], [0.0, 186.0, 44.6, 0.06],
       [0.0, 0.0, 1.0, 0.0027], [0.0, 0.0, 0.0, 1.0]]
HEAD = dict(type='FixedMonoFlexHead', num_classes=3, in_channels=16,
            cls_branch=(8, ), reg_branch=((8, ), ) * 8,
            norm_cfg=dict(type='BN'))


def _multibin_targets(alphas):
    coder = FixedMonoFlexCoder()
    boxes = CameraInstance3DBoxes(
        torch.tensor([[0., 1.5, 20., 4., 1.5, 1.6, float(a)]
                      for a in alphas]))
    return coder.encode(boxes)  # x = 0: local yaw = yaw


def _reference_multibin(pred, target):
    """MonoFlex's loss written plainly (every bin)."""
    ce, res, count = 0., 0., 0
    for i in range(NB):
        logp = torch.log_softmax(pred[:, 2 * i:2 * i + 2].double(), dim=1)
        ce += -logp[torch.arange(len(pred)), target[:, i].long()].mean()
        for n in range(len(pred)):
            if target[n, i] == 1:
                sc = pred[n, 2 * NB + 2 * i:2 * NB + 2 * i + 2].double()
                sc = sc / sc.norm()
                off = target[n, NB + i].double()
                res += (sc[0] - torch.sin(off)).abs() + \
                    (sc[1] - torch.cos(off)).abs()
                count += 1
    return ce / NB + res / max(count, 1)


# --------------------------------------------------------------- MultiBin
def test_multibin_trains_every_bin_issue_1652():
    torch.manual_seed(0)
    target = _multibin_targets([0.1, 1.7, -2.9, -1.4, 3.0])
    pred = torch.randn(5, 4 * NB, requires_grad=True)
    fixed = FixedMultiBinLoss(loss_weight=1.0)(pred, target, NB)
    assert torch.allclose(fixed.double(), _reference_multibin(pred, target),
                          atol=1e-5)
    fixed.backward()
    # the logits and residuals of bins 1-3 get gradients
    assert (pred.grad[:, 2:2 * NB].abs().sum(0) > 0).all()
    assert pred.grad[:, 2 * NB + 2:].abs().sum() > 0
    # upstream returns after bin 0: bins 1-3 get no gradient at all
    pred.grad = None
    MultiBinLoss(loss_weight=1.0)(pred, target, NB).backward()
    assert pred.grad[:, 2:2 * NB].abs().sum() == 0
    assert pred.grad[:, 2 * NB + 2:].abs().sum() == 0


def test_multibin_finite_without_bin0_objects_and_without_objects():
    target = _multibin_targets([math.pi / 2, math.pi])  # no object in bin 0
    assert not target[:, 0].any()
    pred = torch.randn(2, 4 * NB)
    with pytest.raises(ZeroDivisionError):  # 0 / 0 upstream
        MultiBinLoss()(pred, target, NB)
    assert torch.isfinite(FixedMultiBinLoss()(pred, target, NB))
    empty = torch.zeros(0, 4 * NB, requires_grad=True)
    zero = FixedMultiBinLoss()(empty, torch.zeros(0, 2 * NB), NB)
    assert zero.item() == 0.0 and zero.requires_grad
    assert multibin_orientation_loss(pred, target, NB).item() > 0


# ------------------------------------------------------------------ coder
def test_coder_decode_dims_exp_and_linear():
    labels = torch.tensor([0, 2])
    offsets = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -1.0]])
    dims = torch.tensor(MONOFLEX_KITTI_DIMS)[labels]
    exp = FixedMonoFlexCoder(dims_mode='exp')
    assert torch.allclose(exp.decode_dims(labels, offsets),
                          dims[:, :3] * offsets.exp())
    with pytest.raises(UnboundLocalError):  # upstream never assigns it
        MonoFlexCoder.decode_dims(exp, labels, offsets)
    lin = FixedMonoFlexCoder(dims_mode='linear')
    want = dims[:, :3] + dims[:, 3:] * offsets
    assert torch.allclose(lin.decode_dims(labels, offsets), want)
    assert not torch.allclose(MonoFlexCoder.decode_dims(lin, labels, offsets),
                              want)  # upstream: o * mean + std


def _exact_keypoints(boxes, cam):
    """The 10 keypoints (release order) of ``boxes`` through ``cam``."""
    corners = boxes.corners
    bottom = boxes.bottom_center
    top = bottom.clone()
    top[:, 1] -= boxes.dims[:, 1]
    pts = torch.cat([corners, bottom[:, None], top[:, None]], dim=1)
    homo = pts @ cam[:3, :3].t() + cam[:3, 3]
    return homo[..., :2] / homo[..., 2:], homo[..., 2]


def test_coder_keypoint_depths_exact():
    boxes = CameraInstance3DBoxes(torch.tensor([
        [1.0, 1.6, 12.0, 3.9, 1.5, 1.6, 0.3],
        [-4.0, 1.7, 25.0, 4.2, 1.6, 1.7, -1.2],
        [6.0, 1.5, 40.0, 0.8, 1.8, 0.6, 2.9],
    ]))
    cam = torch.tensor(CAM)
    kp, _ = _exact_keypoints(boxes, cam)
    depth = boxes.gravity_center[:, 2] + cam[2, 3]  # what cam divides by
    cams = cam[:3].expand(3, 3, 4)
    coder = FixedMonoFlexCoder()
    fixed = coder.keypoints2depth(kp, boxes.dims, cams, 1.0)
    # corners of a vertical edge share a depth, so each estimate is exact
    # up to the eps added to the height
    assert torch.allclose(fixed, depth[:, None].expand(3, 3), rtol=1e-3)
    # upstream (mmdet3d's keypoint order: top centre first) clamps the
    # centre estimate to 100 m and pairs corners across edges
    up = MonoFlexCoder.keypoints2depth(coder, kp[:, list(range(8)) + [9, 8]],
                                       boxes.dims, cams, 1.0)
    assert torch.all(up[:, 0] == coder.depth_range[1])
    assert (up[:, 1:] - depth[:, None]).abs().max() > 0.1
    assert [sorted({i for p in g for i in p}) for g in KEYPOINT_GROUPS] == \
        [[8, 9], [0, 3, 5, 6], [1, 2, 4, 7]]


def test_coder_bboxes2d_relu_and_bin_margin():
    coder = FixedMonoFlexCoder()
    out = coder.decode_bboxes2d(torch.tensor([[-2., 1., 3., -4.]]),
                                torch.tensor([[10., 10.]]))
    assert out.tolist() == [[10., 9., 13., 10.]]
    up = MonoFlexCoder.decode_bboxes2d(coder,
                                       torch.tensor([[-2., 1., 3., -4.]]),
                                       torch.tensor([[10., 10.]]))
    assert up[0, 0] > up[0, 2] or up[0, 1] > up[0, 3]  # inside out
    with pytest.raises(ValueError, match='fraction of the bin width'):
        FixedMonoFlexCoder(bin_margin=np.pi / 6)  # mmdet3d's unit test value


# ----------------------------------------------------------------- targets
def test_ellipse_gaussian_finite_for_zero_radius():
    up = torch.zeros(8, 8)
    get_ellip_gaussian_2D(up, [0, 4], 0, 3)
    assert torch.isnan(up).any()  # sigma = 1 // 6 = 0 upstream
    heat = torch.zeros(8, 8)
    ellip_gaussian_target(heat, (0, 4), 0, 3)
    assert torch.isfinite(heat).all() and heat[4, 0] == 1.0
    assert heat[:, 1:].sum() == 0 and 0 < heat[2, 0] < 1


def test_border_intersection():
    # from (-10, 5) towards (10, 5): enters at the left border
    assert border_intersection((-10, 5), (10, 5), 20, 10) == (0.0, 5.0)
    # diagonal, through the bottom edge first
    x, y = border_intersection((5, 20), (5, 5), 20, 10)
    assert (x, y) == (5.0, 10.0)
    x, y = border_intersection((-4, -2), (4, 2), 20, 10)
    assert (x, y) == (0.0, 0.0)


def _head(**kwargs):
    cfg = dict(HEAD)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _upstream_head(**kwargs):
    """mmdet3d's MonoFlexHead with the same branches (edge fusion off:
    upstream builds it for 256 channels only)."""
    cfg = dict(
        HEAD, type='MonoFlexHead', use_edge_fusion=False,
        edge_fusion_inds=[], edge_heatmap_ratio=0.5, stacked_convs=0,
        feat_channels=16, use_direction_classifier=False,
        group_reg_dims=((4, ), (2, ), (20, ), (3, ), (3, ), (8, 8), (1, ),
                        (1, )),
        bbox_coder=dict(type='FixedMonoFlexCoder'))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_head_init_weights_runs_and_shrinks_both_uncertainties():
    with pytest.raises(AttributeError, match='cls_convs'):
        _upstream_head().init_weights()
    torch.manual_seed(0)
    head = _head()
    corner_u, depth_u = head.conv_regs[3][0], head.conv_regs[7][0]
    dims = head.conv_regs[4][0]
    for conv in (corner_u, depth_u):
        assert conv.weight.std() < 0.02 and conv.bias.abs().max() == 0
    # the size output keeps PyTorch's default (upstream xaviers it instead)
    assert dims.weight.std() > 0.05
    assert head.conv_cls.bias.mean().item() == pytest.approx(-4.595)


def test_head_edge_fusion_follows_branch_width_without_relu():
    head = _head()
    assert head.edge_fuse_cls.edge_convs[0].conv.in_channels == 8
    assert head.edge_fuse_reg_1_0.edge_convs[0].conv.in_channels == 8
    assert not any(isinstance(m, torch.nn.ReLU)
                   for m in head.edge_fuse_cls.modules())
    metas = [dict(img_shape=(96, 320), pad_shape=(96, 320))] * 2
    cls, reg = head([torch.randn(2, 16, 24, 80)], metas)
    assert cls[0].shape == (2, 3, 24, 80) and reg[0].shape == (2, 50, 24, 80)
    # upstream builds the fusion for 256 channels whatever the branches are
    upstream = _upstream_head(use_edge_fusion=True, edge_fusion_inds=[(1, 0)])
    with pytest.raises(RuntimeError):
        upstream([torch.randn(2, 16, 24, 80)], metas)


def test_head_chains_multi_layer_branches():
    head = _head(cls_branch=(8, 4), reg_branch=((8, 4), ) * 8)
    metas = [dict(img_shape=(96, 320), pad_shape=(96, 320))]
    cls, reg = head([torch.randn(1, 16, 24, 80)], metas)
    assert cls[0].shape == (1, 3, 24, 80) and reg[0].shape == (1, 50, 24, 80)
    upstream = _upstream_head(cls_branch=(8, 4), reg_branch=((8, 4), ) * 8)
    with pytest.raises(RuntimeError):  # each conv applied to the input
        upstream([torch.randn(1, 16, 24, 80)], metas)


def _samples(objects, stride=4):
    return make_samples(objects, CAM, (96, 320), stride=stride)


def test_head_loss_runs_from_data_samples_and_on_empty_images():
    torch.manual_seed(0)
    head = _head()
    samples = _samples([[(1.0, 1.6, 12.0, 3.9, 1.5, 1.6, 0.3, 2),
                         (-2.0, 1.7, 30.0, 0.8, 1.8, 0.6, 2.0, 0)], []])
    feats = [torch.randn(2, 16, 24, 80, requires_grad=True)]
    losses = head.loss(feats, samples)
    assert len(losses) == 11
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    assert feats[0].grad.abs().sum() > 0
    # a batch without any object: zero regression terms, graph kept
    feats = [torch.randn(1, 16, 24, 80, requires_grad=True)]
    losses = head.loss(feats, _samples([[]]))
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(v.item() == 0 for k, v in losses.items() if k != 'loss_cls')
    sum(losses.values()).backward()
    # upstream's own loss() cannot run at all (it calls itself)
    with pytest.raises(TypeError):
        _upstream_head().loss(feats, _samples([[]]))


def test_truncated_object_trained_at_the_border():
    head = _head()
    # centre far left of the image, box still in it
    samples = _samples([[(-7.5, 1.6, 8.0, 3.9, 1.5, 1.6, 0.0, 2),
                         (1.0, 1.6, 15.0, 3.9, 1.5, 1.6, 0.3, 2)]])
    centres = samples[0].gt_instances_3d.centers_2d
    assert centres[0, 0] < 0 < centres[1, 0]
    heat, t = head.get_targets([s.gt_instances_3d for s in samples],
                               [s.gt_instances for s in samples],
                               (1, 3, 24, 80), [s.metainfo for s in samples])
    assert t['trunc'].tolist() == [True, False]
    assert t['cells'][0, 0] == 0  # on the left border
    assert torch.allclose(t['offsets'][0], centres[0] / 4 - t['cells'][0])
    assert torch.isfinite(heat).all()
    assert heat[0, 2, t['cells'][0, 1], 0] == 1.0
    upstream_like = _head(consider_truncated=False)
    _, t2 = upstream_like.get_targets(
        [s.gt_instances_3d for s in samples],
        [s.gt_instances for s in samples], (1, 3, 24, 80),
        [s.metainfo for s in samples])
    assert t2['trunc'].tolist() == [False]


def test_targets_in_feature_cells_through_trans_mat():
    """Keypoints, offsets and the 2D box are in cells, relative to the
    heatmap cell, projected with trans_mat @ cam2img: on exact keypoint
    targets the fixed coder recovers each object's depth."""
    head = _head()
    samples = _samples([[(1.0, 1.6, 12.0, 3.9, 1.5, 1.6, 0.3, 2),
                         (-3.0, 1.6, 22.0, 3.9, 1.5, 1.6, -1.3, 2)]])
    # mmdet3d's depths are what the camera divides by: z + P2[2, 3]
    samples[0].gt_instances_3d.depths += CAM[2][3]
    _, t = head.get_targets([s.gt_instances_3d for s in samples],
                            [s.gt_instances for s in samples],
                            (1, 3, 24, 80), [s.metainfo for s in samples])
    cam_f = torch.tensor(feature_camera(samples[0].metainfo, (4., 4.)),
                         dtype=torch.float32)
    assert torch.allclose(cam_f[:2], torch.tensor(CAM)[:2] / 4)
    kp = t['keypoints'] + t['cells'][:, None].float()
    depths = head.bbox_coder.keypoints2depth(kp, t['dims'], t['cams'], 1.0)
    assert torch.allclose(depths, t['depth'][:, None].expand(2, 3),
                          rtol=2e-3)
    # the FCOS distances of the 2D target are in cells around the cell
    assert (t['bbox2d'][:, 2] - t['bbox2d'][:, 0] < 80).all()
    assert t['bbox2d_valid'].all()
    # the corner-loss target re-lifted from (centre, depth) is the box
    boxes = samples[0].gt_instances_3d.bboxes_3d
    assert torch.allclose(t['locations'], boxes.gravity_center, atol=1e-3)
    assert torch.allclose(
        lift_to_camera(t['cams'], t['offsets'] + t['cells'].float(),
                       t['depth']), t['locations'])
