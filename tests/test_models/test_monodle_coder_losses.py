"""MonoDLE's box coder and loss terms against hand-computed values."""
import math

import numpy as np
import pytest
import torch

import ddml  # noqa: F401
from ddml.models.heads.monodle_head import (KITTI_MEAN_SIZES,
                                            centernet_gaussian_radius)
from ddml.models.losses import (DimensionAwareL1Loss,
                                HierarchicalTaskLearning,
                                LaplacianAleatoricUncertaintyLoss,
                                MultiBinHeadingLoss)
from ddml.models.task_modules import MonoDLECoder
from mmdet3d.structures import CameraInstance3DBoxes, points_cam2img

# KITTI's P2 of 2011-09-26 (a translation in every row)
P2 = torch.tensor([[721.5377, 0.0, 609.5593, 44.85728],
                   [0.0, 721.5377, 172.854, 0.2163791],
                   [0.0, 0.0, 1.0, 0.002745884], [0., 0., 0., 1.]])


def _angle_diff(a, b):
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def _random_boxes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = 5 + 55 * torch.rand(n, generator=g)
    x = (torch.rand(n, generator=g) - 0.5) * z
    y = 1.2 + 0.6 * torch.rand(n, generator=g)
    labels = torch.randint(0, 3, (n, ), generator=g)
    mean = torch.tensor(KITTI_MEAN_SIZES)[labels]
    dims = mean * (0.8 + 0.4 * torch.rand(n, 3, generator=g))
    yaw = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    boxes = torch.cat([torch.stack([x, y, z], 1), dims, yaw[:, None]], 1)
    return CameraInstance3DBoxes(boxes), labels


def _encode_decode(coder, boxes, labels, cam2img, stride, feat_to_img=None,
                   img_to_input=None):
    """Encode with input-pixel centres, decode to cam2img's frame."""
    centers = points_cam2img(boxes.gravity_center, cam2img)
    corners = points_cam2img(boxes.corners.reshape(-1, 3),
                             cam2img).reshape(-1, 8, 2)
    boxes_2d = torch.cat([corners.min(1).values, corners.max(1).values], 1)
    if img_to_input is not None:  # e.g. AffineResize: original -> input
        A = img_to_input

        def apply(p):
            return p @ A[:2, :2].t() + A[:2, 2]

        centers = apply(centers)
        boxes_2d = torch.cat([apply(boxes_2d[:, :2]),
                              apply(boxes_2d[:, 2:])], 1)
    enc = coder.encode(boxes, labels, centers, boxes_2d, stride)
    dec_boxes, dec_2d = coder.decode(
        enc['cells'], enc['offset_2d'], enc['size_2d'], enc['offset_3d'],
        enc['depth'], enc['size_3d'], enc['heading_bin'], enc['heading_res'],
        labels, cam2img, stride, feat_to_img)
    return enc, dec_boxes, dec_2d, boxes_2d


def _assert_same_boxes(dec, boxes, atol=1e-4):
    ref = boxes.tensor
    assert torch.allclose(dec[:, :6], ref[:, :6], atol=atol, rtol=0), \
        (dec[:, :6] - ref[:, :6]).abs().max()
    assert _angle_diff(dec[:, 6], ref[:, 6]).abs().max() < atol


def test_coder_round_trip_input_pixels():
    coder = MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES)
    boxes, labels = _random_boxes(200)
    enc, dec, dec_2d, boxes_2d = _encode_decode(coder, boxes, labels, P2,
                                                stride=4)
    _assert_same_boxes(dec, boxes)
    assert torch.allclose(dec_2d, boxes_2d, atol=1e-3, rtol=0)
    # targets in their documented ranges
    assert ((enc['offset_3d'] >= 0) & (enc['offset_3d'] < 1)).all()
    assert (enc['heading_res'].abs() <= math.pi / 12 + 1e-9).all()
    assert torch.allclose(enc['depth'], boxes.tensor[:, 2])


def test_coder_round_trip_through_affine():
    """AffineResize-like original -> input map, decoded via its inverse."""
    coder = MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES)
    boxes, labels = _random_boxes(100, seed=1)
    cam2img = P2
    s = 416. / 1242.
    to_input = torch.tensor([[s, 0., 3.], [0., s, -2.], [0., 0., 1.]])
    stride = 4.
    # trans_mat maps the original image to the feature map
    trans_mat = torch.diag(torch.tensor([1 / stride, 1 / stride, 1.])) \
        @ to_input
    _, dec, dec_2d, boxes_2d = _encode_decode(
        coder, boxes, labels, cam2img, stride,
        feat_to_img=torch.linalg.inv(trans_mat), img_to_input=to_input)
    _assert_same_boxes(dec, boxes)
    corners = points_cam2img(boxes.corners.reshape(-1, 3),
                             cam2img).reshape(-1, 8, 2)
    orig_2d = torch.cat([corners.min(1).values, corners.max(1).values], 1)
    assert torch.allclose(dec_2d, orig_2d, atol=1e-2, rtol=0)


def test_heading_code_by_hand():
    coder = MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES)
    w = math.pi / 6
    alpha = torch.tensor([0., 0.3, -0.3, w / 2, math.pi - 1e-3, -math.pi])
    bins, res = coder.encode_heading(alpha)
    # 0 -> bin 0; 0.3 -> (0.3 + w/2) in bin 1, r = 0.3 - w; -0.3 -> bin 11
    assert bins.tolist() == [0, 1, 11, 1, 6, 6]
    assert res[0] == 0
    assert math.isclose(res[1].item(), 0.3 - w, abs_tol=1e-6)
    assert math.isclose(res[2].item(), -0.3 + w, abs_tol=1e-6)
    assert math.isclose(res[3].item(), -w / 2, abs_tol=1e-6)
    back = coder.decode_heading(bins, res)
    assert _angle_diff(back, alpha).abs().max() < 1e-6


def test_heading_angle_yaw_codes_rotation_y():
    """``heading_angle='yaw'``: the bins code ``rotation_y`` itself, so the
    same yaw anywhere in the image has one target (``'alpha'`` varies with
    the viewing ray); boxes round-trip either way."""
    boxes, labels = _random_boxes(200, seed=3)
    yaw_coder = MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES,
                             heading_angle='yaw')
    enc, dec, _, _ = _encode_decode(yaw_coder, boxes, labels, P2, stride=4)
    _assert_same_boxes(dec, boxes)
    back = yaw_coder.decode_heading(enc['heading_bin'], enc['heading_res'])
    assert _angle_diff(back, boxes.tensor[:, 6]).abs().max() < 1e-5
    # alpha is still reported as the observation angle
    ray = torch.atan2(boxes.tensor[:, 0], boxes.tensor[:, 2])
    assert _angle_diff(enc['alpha'], boxes.tensor[:, 6] - ray).abs().max() \
        < 1e-5
    # one yaw (pi/2, along the road) at many places: one target with
    # 'yaw', several with 'alpha'
    same = boxes.tensor.clone()
    same[:, 6] = math.pi / 2
    same = CameraInstance3DBoxes(same)
    by_yaw, _, _, _ = _encode_decode(yaw_coder, same, labels, P2, stride=4)
    by_alpha, _, _, _ = _encode_decode(
        MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES), same, labels, P2,
        stride=4)
    assert by_yaw['heading_bin'].unique().numel() == 1
    assert by_alpha['heading_bin'].unique().numel() >= 3
    with pytest.raises(ValueError, match='heading_angle'):
        MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES, heading_angle='ry')


def test_depth_transform_by_hand_and_inverse():
    raw = torch.tensor([0., 2.])
    depth = MonoDLECoder.depth_from_raw(raw)
    # 1 / (sigmoid(o) + 1e-6) - 1
    assert math.isclose(depth[0].item(), 1 / (0.5 + 1e-6) - 1, rel_tol=1e-6)
    sig2 = 1 / (1 + math.exp(-2.))
    assert math.isclose(depth[1].item(), 1 / (sig2 + 1e-6) - 1,
                        rel_tol=1e-6)
    d = torch.tensor([2., 10., 40., 80.], dtype=torch.float64)
    assert torch.allclose(
        MonoDLECoder.depth_from_raw(MonoDLECoder.depth_to_raw(d)), d,
        atol=1e-6)


def test_coder_rejects_bad_mean_sizes_and_labels():
    with pytest.raises(ValueError, match='mean_sizes'):
        MonoDLECoder(mean_sizes=(1., 2., 3.))
    coder = MonoDLECoder(mean_sizes=KITTI_MEAN_SIZES)
    with pytest.raises(ValueError, match='labels must lie'):
        coder.mean_size_of(torch.tensor([0, 3]))


def test_centernet_radius_by_hand():
    # h = w = 10, o = 0.7: roots 19.07, 36.73 and the third,
    # (-28 + sqrt(28^2 + 4 * 2.8 * 30)) / 2 = 2.733
    assert math.isclose(
        centernet_gaussian_radius(10, 10, 0.7), (-28 + math.sqrt(1120)) / 2,
        rel_tol=1e-9)


def test_laplacian_loss_by_hand():
    loss = LaplacianAleatoricUncertaintyLoss(loss_weight=2.)
    pred = torch.tensor([10., 20.], requires_grad=True)
    target = torch.tensor([12., 18.])
    log_sigma = torch.tensor([0., math.log(2.)], requires_grad=True)
    value = loss(pred, target, log_sigma)
    # (sqrt2 * 1 * 2 + 0 + sqrt2 * 0.5 * 2 + ln2) / 2, times 2
    expected = math.sqrt(2) * 2 + math.sqrt(2) + math.log(2)
    assert math.isclose(value.item(), expected, rel_tol=1e-6)
    value.backward()
    # d/dpred = w/N sqrt2 e^-s sign(pred - target)
    assert torch.allclose(pred.grad,
                          torch.tensor([-math.sqrt(2), math.sqrt(2) / 2]))
    # d/ds = w/N (1 - sqrt2 e^-s |e|)
    assert torch.allclose(
        log_sigma.grad,
        torch.tensor([1 - 2 * math.sqrt(2), 1 - math.sqrt(2)]))
    empty = torch.zeros(0, requires_grad=True)
    zero = loss(empty, empty.detach(), empty)
    assert zero.item() == 0 and zero.requires_grad


def test_dimension_aware_l1_by_hand():
    loss = DimensionAwareL1Loss()
    pred = torch.tensor([[4.0, 1.5, 1.6]], requires_grad=True)
    target = torch.tensor([[3.5, 1.5, 2.0]])
    value = loss(pred, target)
    # the value is the plain L1: (0.5 + 0 + 0.4) / 3
    assert math.isclose(value.item(), 0.3, rel_tol=1e-6)
    value.backward()
    # gradient c / (3 t) sign(e), c = 0.3 / ((0.5/3.5 + 0.4/2) / 3)
    c = 0.3 / ((0.5 / 3.5 + 0.4 / 2.0) / 3)
    assert torch.allclose(
        pred.grad, torch.tensor([[c / 3 / 3.5, 0., -c / 3 / 2.0]]))
    assert loss(pred[:0], target[:0]).item() == 0
    assert loss(target.clone().requires_grad_(), target).item() == 0


def test_multibin_heading_loss_by_hand():
    loss = MultiBinHeadingLoss(num_bins=12)
    logits = torch.zeros(2, 12)
    logits[1, 5] = math.log(12.)  # p(bin 5) = 12 / 23
    residuals = torch.zeros(2, 12)
    residuals[0, 3] = 0.1
    residuals[1, 5] = -0.2
    value = loss(logits, residuals, torch.tensor([3, 5]),
                 torch.tensor([0.05, 0.1]))
    ce = (math.log(12.) + math.log(23. / 12.)) / 2
    reg = (0.05 + 0.3) / 2
    assert math.isclose(value.item(), ce + reg, rel_tol=1e-6)
    with pytest.raises(ValueError, match=r'\(N, 12\)'):
        loss(logits[:, :6], residuals, torch.tensor([3, 5]),
             torch.tensor([0.05, 0.1]))


def test_heatmap_focal_loss_by_hand():
    """The head's heatmap term: mmdet's GaussianFocalLoss, by hand."""
    from mmdet3d.registry import MODELS
    loss = MODELS.build(dict(type='mmdet.GaussianFocalLoss'))
    pred = torch.tensor([[[[0.8, 0.3], [0.1, 0.2]]]])
    target = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
    value = loss(pred, target, avg_factor=1)
    pos = -math.log(0.8) * 0.2**2
    neg = (-math.log(0.7) * 0.3**2 * 0.5**4 - math.log(0.9) * 0.1**2 -
           math.log(0.8) * 0.2**2)
    assert math.isclose(value.item(), pos + neg, rel_tol=1e-5)


def _feed_epochs(htl, epoch_losses):
    weights = []
    for epoch, values in enumerate(epoch_losses):
        w = htl({t: torch.tensor(v) for t, v in values.items()},
                epoch=epoch)
        weights.append({t: float(x) for t, x in w.items()})
    return weights


def test_hierarchical_task_learning_by_hand():
    graph = dict(a=(), b=('a', ), c=('a', 'b'))
    htl = HierarchicalTaskLearning(graph, stat_epochs=3, total_epochs=8)
    # epoch means of task a: 10, 8, 6, 5.5, 5.25; b: 4, 4, 4, 3, 3
    a = [10., 8., 6., 5.5, 5.25]
    b = [4., 4., 4., 3., 3.]
    weights = _feed_epochs(
        htl, [dict(a=x, b=y, c=1.) for x, y in zip(a, b, strict=True)])
    # epochs 0-2: fewer than K = 3 epoch means, dependents off
    for w in weights[:3]:
        assert w == dict(a=1., b=0., c=0.)
    # epoch 3: window (10, 8, 6): DF_a = 10 - 6 = 4 = DF_a(K), ls_a = 0;
    # DF_b = 0, ls_b = 1; progress (3 - 3) / (8 - 3) = 0
    assert weights[3] == dict(a=1., b=0., c=0.)
    # epoch 4: window (8, 6, 5.5): DF_a = 2.5, ls_a = 1 - 2.5 / 4 = 0.375;
    # DF_b = 4 - 3 = 1 > 0 with DF_b(K) = 0: ls_b = 0; progress 1/5
    assert math.isclose(weights[4]['b'], 0.2**(1 - 0.375), rel_tol=1e-6)
    assert math.isclose(weights[4]['c'], 0.2**(1 - 0.375 * 0.), rel_tol=1e-6)
    # state survives a state_dict round trip (checkpoints, --resume)
    again = HierarchicalTaskLearning(graph, stat_epochs=3, total_epochs=8)
    again.load_state_dict(htl.state_dict())
    w = again(dict(a=torch.tensor(5.), b=torch.tensor(3.),
                   c=torch.tensor(1.)), epoch=5)
    # window (6, 5.5, 5.25): DF_a = 0.75, ls_a = 1 - 0.75 / 4; progress 2/5
    assert math.isclose(float(w['b']), 0.4**(0.75 / 4), rel_tol=1e-6)
    # DF_b over (4, 3, 3) = 1 -> ls_b = 0 (DF_b(K) = 0)
    assert math.isclose(float(w['c']), 0.4, rel_tol=1e-6)


def test_hierarchical_task_learning_rejects_bad_graphs():
    with pytest.raises(ValueError, match='pre_tasks'):
        HierarchicalTaskLearning(dict(a=('x', )))
    with pytest.raises(ValueError, match='stat_epochs'):
        HierarchicalTaskLearning(stat_epochs=2)
    htl = HierarchicalTaskLearning(dict(a=()), stat_epochs=3,
                                   total_epochs=10)
    with pytest.raises(KeyError, match="'a'"):
        htl(dict(b=torch.tensor(1.)), epoch=0)


def test_np_reference_of_centernet_radius_is_not_mmdets():
    """MonoDLE's radius is CenterNet's original one, larger than mmdet's."""
    from mmdet.models.utils import gaussian_radius
    r_ours = centernet_gaussian_radius(12., 30., 0.7)
    r_mmdet = gaussian_radius((12., 30.), 0.7)
    assert r_ours > r_mmdet
    h, w, o = 12., 30., 0.7
    r1 = (h + w + np.sqrt((h + w)**2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + np.sqrt(4 * (h + w)**2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) +
          np.sqrt(4 * o**2 * (h + w)**2 - 16 * o * (o - 1) * w * h)) / 2
    roots = [r1, r2, r3]
    assert math.isclose(r_ours, min(roots), rel_tol=1e-9)
