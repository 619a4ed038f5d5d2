"""MonoDLEHead and the MonoDLE detector: loss terms by hand, a light
backbone, perfect predictions through KittiMetric, and the DDML wrapper."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

import ddml  # noqa: F401
from ddml.models.heads.monodle_head import centernet_gaussian_radius
from mmdet3d.registry import METRICS, MODELS
from mmdet3d.structures import (CameraInstance3DBoxes, Det3DDataSample,
                                points_cam2img)
from mmdet3d.utils import register_all_modules

register_all_modules(init_default_scope=True)

CAM2IMG = [[100., 0., 50., 0.], [0., 100., 20., 0.], [0., 0., 1., 0.],
           [0., 0., 0., 1.]]
MEANS = ((0.8, 1.7, 0.6), (1.7, 1.7, 0.6), (3.5, 1.5, 1.6))

# A light MonoDLE (the CPU demo's backbone): ResNet-18 at half width and
# SECONDFPN give one 64-channel map at stride 4.
LIGHT_MODEL = dict(
    type='MonoDLE',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN'),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='SECONDFPN',
        in_channels=[32, 64, 128, 256],
        out_channels=[16, 16, 16, 16],
        upsample_strides=[1, 2, 4, 8],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    bbox_head=dict(
        type='MonoDLEHead', num_classes=3, in_channels=64, feat_channels=64),
    test_cfg=dict(topk=50, score_thr=0.2))


def _head(**kwargs):
    cfg = dict(
        type='MonoDLEHead',
        num_classes=3,
        in_channels=4,
        feat_channels=4,
        bbox_coder=dict(type='MonoDLECoder', mean_sizes=MEANS))
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _set_constant(head, name, values):
    """Make branch ``name`` output ``values`` at every cell."""
    last = getattr(head, name)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.as_tensor(values, dtype=torch.float32))


def _sample(objects, affine_aug=False, hw=(64, 128)):
    """One sample; objects are (bottom centre, (l, h, w), yaw, label)."""
    sample = Det3DDataSample()
    sample.set_metainfo(
        dict(cam2img=CAM2IMG, affine_aug=affine_aug, img_shape=hw,
             pad_shape=hw, batch_input_shape=hw,
             box_type_3d=CameraInstance3DBoxes))
    boxes = torch.tensor([list(c) + list(d) + [yaw]
                          for c, d, yaw, _ in objects]).reshape(-1, 7)
    gt3d = InstanceData()
    gt3d.bboxes_3d = CameraInstance3DBoxes(boxes)
    gt3d.labels_3d = torch.tensor([o[3] for o in objects], dtype=torch.long)
    gt3d.centers_2d = points_cam2img(gt3d.bboxes_3d.gravity_center,
                                     torch.tensor(CAM2IMG))
    gt3d.depths = gt3d.bboxes_3d.gravity_center[:, 2]
    gt = InstanceData()
    gt.bboxes = torch.tensor([[52., 16., 68., 34.]] * len(objects))
    gt.labels = gt3d.labels_3d.clone()
    sample.gt_instances_3d = gt3d
    sample.gt_instances = gt
    return sample


# gravity centre (1, 0.5, 10) projects to (60, 25): cell (15, 6) at stride
# 4, offset_3d (0, 0.25); the 2D box (52, 16, 68, 34) has centre (60, 25)
# -> offset_2d (0, 0.25) and size (4, 4.5) cells; alpha = 0.3.
CAR = ((1., 1.25, 10.), (4., 1.5, 1.6), 0.3 + math.atan2(1., 10.), 2)


def _loss_terms(head, samples):
    feat = torch.randn(len(samples), 4, 16, 32)
    return head.loss([feat], samples)


def _expected_heatmap_loss(prob, peaks, shape=(3, 16, 32)):
    """Focal loss of a constant prediction, by hand (numpy)."""
    target = np.zeros(shape)
    for label, cx, cy, radius in peaks:
        sigma = (2 * radius + 1) / 6
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                g = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
                y, x = cy + dy, cx + dx
                target[label, y, x] = max(target[label, y, x], g)
    pos = (target == 1)
    pos_loss = -math.log(prob) * (1 - prob)**2 * pos.sum()
    neg_loss = (-math.log(1 - prob) * prob**2 *
                ((1 - target)**4)[~pos].sum())
    return (pos_loss + neg_loss) / max(1, pos.sum())


CONSTANTS = dict(
    heatmap=(-1., -1., -1.), offset_2d=(0.1, 0.2), size_2d=(3., 5.),
    depth=(0., 0.), offset_3d=(0., 0.), size_3d=(0., 0., 0.),
    heading=(0., ) * 24)


def test_loss_terms_by_hand():
    head = _head()
    for name, values in CONSTANTS.items():
        _set_constant(head, name, values)
    losses = _loss_terms(head, [_sample([CAR])])
    assert set(losses) == {
        'loss_heatmap', 'loss_offset_2d', 'loss_size_2d', 'loss_offset_3d',
        'loss_depth', 'loss_size_3d', 'loss_heading'
    }
    radius = int(centernet_gaussian_radius(4.5, 4., 0.7))
    assert radius == 1
    prob = 1 / (1 + math.exp(1.))
    expected = dict(
        loss_heatmap=_expected_heatmap_loss(prob, [(2, 15, 6, radius)]),
        loss_offset_2d=(0.1 + 0.05) / 2,
        loss_size_2d=(1. + 0.5) / 2,
        loss_offset_3d=(0. + 0.25) / 2,
        # depth 1 / (0.5 + 1e-6) - 1 against 10 m, log sigma 0
        loss_depth=math.sqrt(2) * (10 - (1 / (0.5 + 1e-6) - 1)),
        # class mean (3.5, 1.5, 1.6) against (4, 1.5, 1.6): the L1 value
        loss_size_3d=0.5 / 3,
        # uniform bins: ln 12; target bin 1, residual 0.3 - pi / 6
        loss_heading=math.log(12.) + abs(0.3 - math.pi / 6))
    for key, value in expected.items():
        assert math.isclose(losses[key].item(), value, rel_tol=1e-5), \
            (key, losses[key].item(), value)


def test_augmented_images_skip_3d_terms_and_distant_objects_are_left_out():
    head = _head()
    for name, values in CONSTANTS.items():
        _set_constant(head, name, values)
    plain = _loss_terms(head, [_sample([CAR])])
    aug = _loss_terms(head, [_sample([CAR], affine_aug=True)])
    for key in ('loss_offset_3d', 'loss_depth', 'loss_size_3d'):
        assert aug[key].item() == 0 and aug[key].requires_grad
    for key in ('loss_heatmap', 'loss_offset_2d', 'loss_size_2d',
                'loss_heading'):
        assert math.isclose(aug[key].item(), plain[key].item(), rel_tol=1e-6)
    # the same car at 70 m (> max_depth = 65): background, no regression
    far = ((7., 1.25, 70.), ) + CAR[1:]
    losses = _loss_terms(head, [_sample([far])])
    prob = 1 / (1 + math.exp(1.))
    assert math.isclose(losses['loss_heatmap'].item(),
                        _expected_heatmap_loss(prob, []), rel_tol=1e-5)
    for key in ('loss_offset_2d', 'loss_depth', 'loss_heading'):
        assert losses[key].item() == 0
    # with max_depth = 80 it is trained again
    head80 = _head(max_depth=80.)
    head80.load_state_dict(head.state_dict())
    assert _loss_terms(head80, [_sample([far])])['loss_depth'].item() > 0


def test_misaligned_2d_boxes_are_refused():
    head = _head()
    sample = _sample([CAR])
    gt = InstanceData()
    gt.bboxes = torch.zeros(0, 4)
    sample.gt_instances = gt
    with pytest.raises(ValueError, match='index-aligned'):
        _loss_terms(head, [sample])


def test_htl_weights_the_terms_and_logs_them():
    head = _head(htl=dict(type='HierarchicalTaskLearning', stat_epochs=3,
                          total_epochs=10))
    losses = _loss_terms(head, [_sample([CAR])])
    # epoch 0: only the heatmap and the 2D terms are trained
    assert losses['htl_weight_depth'].item() == 0
    assert losses['loss_depth'].item() == 0
    assert losses['htl_weight_size_2d'].item() == 1
    assert losses['loss_size_2d'].item() > 0


def _light_batch(model, num=2, hw=(128, 416)):
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(num):
        objects = [((-3. + 4 * i, 1.6, 15. + 5 * i), (3.9, 1.5, 1.6), 0.5,
                    2), ((2., 1.7, 8.), (0.8, 1.7, 0.6), -1.0, 0)]
        s = _sample(objects, hw=hw)
        s.set_metainfo(dict(cam2img=[[240., 0., 208., 0.],
                                     [0., 240., 60., 0.], [0., 0., 1., 0.],
                                     [0., 0., 0., 1.]],
                            trans_mat=np.diag([.25, .25, 1.]).astype(
                                np.float32),
                            sample_idx=i))
        cam = torch.tensor(s.cam2img)
        gt3d = s.gt_instances_3d
        gt3d.centers_2d = points_cam2img(gt3d.bboxes_3d.gravity_center, cam)
        corners = points_cam2img(gt3d.bboxes_3d.corners.reshape(-1, 3),
                                 cam).reshape(-1, 8, 2)
        s.gt_instances.bboxes = torch.cat(
            [corners.min(1).values, corners.max(1).values], 1)
        samples.append(s)
    imgs = [torch.randint(0, 256, (3, ) + hw, generator=g).float()
            for _ in range(num)]
    return dict(inputs=dict(img=imgs), data_samples=samples)


def test_light_monodle_trains_and_predicts_on_cpu():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(LIGHT_MODEL))
    model.init_weights()
    data = _light_batch(model)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    processed = model.data_preprocessor(data, training=True)
    losses = model(**processed, mode='loss')
    assert len([k for k in losses if k.startswith('loss_')]) == 7
    total = sum(v for k, v in losses.items() if k.startswith('loss_'))
    assert torch.isfinite(total)
    total.backward()
    grad = model.bbox_head.depth[0].weight.grad
    assert grad is not None and bool(grad.abs().sum() > 0)
    optim.step()
    model.eval()
    with torch.no_grad():
        out = model.test_step(_light_batch(model))
    assert len(out) == 2
    for sample in out:
        pred3d, pred2d = sample.pred_instances_3d, sample.pred_instances
        assert isinstance(pred3d.bboxes_3d, CameraInstance3DBoxes)
        assert len(pred2d.bboxes) == len(pred3d.bboxes_3d)
        assert pred2d.bboxes.shape[1] == 4


def test_wrapped_monodle_predicts_bit_identically():
    torch.manual_seed(0)
    plain = MODELS.build(copy.deepcopy(LIGHT_MODEL))
    plain.init_weights()
    # score_thr 0 so that the comparison covers all 50 boxes
    plain.bbox_head.test_cfg.score_thr = 0.
    wrapped = MODELS.build(
        dict(
            type='DepthDiscriminativeDetector',
            detector=copy.deepcopy(LIGHT_MODEL),
            qi_loss=dict(type='QuasiIsometricLoss', mode='official',
                         temperature=10., detach_target=True,
                         loss_weight=0.5),
            depth_map_head=dict(type='ObjectDepthMapHead', loss_weight=1.)))
    wrapped.detector.load_state_dict(plain.state_dict())
    wrapped.detector.bbox_head.test_cfg.score_thr = 0.
    plain.eval()
    wrapped.eval()
    with torch.no_grad():
        a = plain.test_step(_light_batch(plain))
        b = wrapped.test_step(_light_batch(plain))
    for sa, sb in zip(a, b, strict=True):
        assert len(sa.pred_instances_3d.scores_3d) == 50
        assert torch.equal(sa.pred_instances_3d.bboxes_3d.tensor,
                           sb.pred_instances_3d.bboxes_3d.tensor)
        assert torch.equal(sa.pred_instances_3d.scores_3d,
                           sb.pred_instances_3d.scores_3d)
        assert torch.equal(sa.pred_instances_3d.labels_3d,
                           sb.pred_instances_3d.labels_3d)
        assert torch.equal(sa.pred_instances.bboxes, sb.pred_instances.bboxes)
    # and the wrapper adds its losses on top of MonoDLE's seven
    wrapped.train()
    data = wrapped.data_preprocessor(_light_batch(plain), training=True)
    losses = wrapped(**data, mode='loss')
    assert {'loss_qi', 'loss_obj_depth', 'loss_depth'} <= set(losses)


# ----------------------------------------------------------------------
# perfect head outputs -> KittiMetric AP 100
# ----------------------------------------------------------------------
IMG_SCALE = (1280, 384)
CLASSES = ['Pedestrian', 'Cyclist', 'Car']


@pytest.fixture(scope='module')
def many_objects_root(tmp_path_factory):
    """30 synthetic KITTI val frames at KITTI's size (about 2 s)."""
    from ddml.data_tools.synthetic_kitti import make_demo_dataset
    root = tmp_path_factory.mktemp('monodle_perfect')
    make_demo_dataset(root, 1, 30, seed=5, scale=1.0, workers=1,
                      progress=False, convert=True)
    return root


def _dataset(root):
    from mmdet3d.registry import DATASETS
    pipeline = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
             with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
        dict(type='AffineResize', img_scale=IMG_SCALE, down_ratio=4),
        dict(type='Pack3DDetInputs',
             keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                   'gt_labels_3d', 'centers_2d', 'depths'])
    ]
    return DATASETS.build(
        dict(type='KittiDataset', data_root=str(root),
             ann_file='kitti_infos_val.pkl',
             data_prefix=dict(img='training/image_2'), pipeline=pipeline,
             modality=dict(use_lidar=False, use_camera=True),
             load_type='fov_image_based', test_mode=False,
             filter_empty_gt=False, metainfo=dict(classes=CLASSES),
             box_type_3d='Camera'))


def _perfect_outputs(head, samples, feat_hw, first_rank=0):
    """Head outputs equal to the encoded ground truth."""
    metas = [s.metainfo for s in samples]
    h, w = feat_hw
    shape = (len(samples), head.num_classes, h, w)
    stride = head._stride(metas, feat_hw)
    targets = head.get_targets([s.gt_instances_3d for s in samples],
                               [s.gt_instances for s in samples], shape,
                               metas, stride)
    n = len(samples)
    nb = head.num_heading_bins
    outs = dict(
        heatmap=torch.full(shape, -10.),
        offset_2d=torch.zeros(n, 2, h, w), size_2d=torch.zeros(n, 2, h, w),
        depth=torch.zeros(n, 2, h, w), offset_3d=torch.zeros(n, 2, h, w),
        size_3d=torch.zeros(n, 3, h, w),
        heading=torch.zeros(n, 2 * nb, h, w))
    b, x, y = (targets['batch_idx'], targets['cells'][:, 0],
               targets['cells'][:, 1])
    cells = set(zip(b.tolist(), targets['labels'].tolist(), x.tolist(),
                    y.tolist(), strict=True))
    assert len(cells) == len(b), 'two objects share a heatmap cell'
    outs['heatmap'][b, targets['labels'], y, x] = 10.
    for name in ('offset_2d', 'size_2d', 'offset_3d', 'size_3d'):
        outs[name][b, :, y, x] = targets[name]
    outs['depth'][b, 0, y, x] = head.bbox_coder.depth_to_raw(
        targets['depth'])
    # equal peaks (the 3x3 NMS keeps neighbours) but scores distinct over
    # the whole set (KITTI's AP samples its thresholds from the scores):
    # the depth confidence exp(-s) of object j is 1 - j / 10^4
    ranks = first_rank + torch.arange(len(b), dtype=torch.float32)
    outs['depth'][b, 1, y, x] = -torch.log1p(-ranks / 1e4)
    heading = torch.zeros(len(b), 2 * nb)
    rows = torch.arange(len(b))
    heading[rows, targets['heading_bin']] = 10.
    heading[rows, nb + targets['heading_bin']] = targets['heading_res']
    outs['heading'][b, :, y, x] = heading
    names = ('heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d',
             'size_3d', 'heading')
    return tuple(outs[k] for k in names), len(b)


def _ground_truth_as_detections(metric, ann_file):
    """KITTI AP of the labels themselves: what a perfect detector gets.

    KITTI's AP40 samples 40 recall points, so a class and difficulty with
    N < 40 ground-truth boxes scores at most 100 N / 40 even when perfect.
    """
    import copy as _copy

    from mmdet3d.evaluation import kitti_eval
    from mmengine.fileio import load
    annos = metric.convert_annos_to_kitti_annos(load(ann_file))
    gts = [a['kitti_annos'] for a in annos]
    dets, rank = [], 0
    for gt in gts:
        keep = gt['name'] != 'DontCare'
        det = {k: _copy.deepcopy(v[keep]) for k, v in gt.items()}
        det['score'] = 1 - (rank + np.arange(int(keep.sum()))) / 1e4
        rank += int(keep.sum())
        dets.append(det)
    _, ap = kitti_eval(gts, dets, CLASSES, eval_types=['bbox', 'bev', '3d'])
    return ap


def _count_car_moderate(ann_file):
    from mmengine.fileio import load
    count = 0
    for info in load(ann_file)['data_list']:
        for inst in info['instances']:
            x1, y1, x2, y2 = inst['bbox']
            count += int(inst['bbox_label'] == CLASSES.index('Car')
                         and y2 - y1 >= 25 and inst['occluded'] <= 1
                         and inst['truncated'] <= 0.3)
    return count


@pytest.mark.slow
def test_perfect_outputs_give_kitti_ap_100(many_objects_root):
    ann_file = str(many_objects_root / 'kitti_infos_val.pkl')
    # KITTI's moderate Cars: 2D height >= 25 px, occlusion <= 1,
    # truncation <= 0.3
    assert _count_car_moderate(ann_file) >= 41
    model = MODELS.build(copy.deepcopy(LIGHT_MODEL))
    head = model.bbox_head
    dataset = _dataset(many_objects_root)
    metric = METRICS.build(dict(type='KittiMetric', ann_file=ann_file))
    metric.dataset_meta = dict(classes=CLASSES)
    decoded = 0
    feat_hw = (IMG_SCALE[1] // 4, IMG_SCALE[0] // 4)
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        sample.set_metainfo(dict(batch_input_shape=IMG_SCALE[::-1]))
        outs, num = _perfect_outputs(head, [sample], feat_hw, decoded)
        results_3d, results_2d = head.predict_by_feat(
            *outs, batch_img_metas=[sample.metainfo])
        assert len(results_3d[0].bboxes_3d) == num
        decoded += num
        pred = Det3DDataSample(metainfo=sample.metainfo)
        model.add_pred_to_datasample([pred], results_3d, results_2d)
        metric.process({}, [pred.to_dict()])
    metrics = metric.compute_metrics(metric.results)
    oracle = _ground_truth_as_detections(metric, ann_file)
    for level in ('moderate', 'hard'):
        for kind in ('3D', 'BEV', '2D'):
            key = f'KITTI/Car_{kind}_AP40_{level}_strict'
            assert metrics[f'pred_instances_3d/{key}'] == pytest.approx(
                100., abs=1e-3), key
        # the regressed 2D boxes, evaluated from pred_instances
        key = f'KITTI/Car_2D_AP40_{level}_strict'
        assert metrics[f'pred_instances/{key}'] == pytest.approx(
            100., abs=1e-3), key
    # every other figure equals that of the labels themselves
    for key, value in oracle.items():
        assert metrics[f'pred_instances_3d/{key}'] == pytest.approx(
            value, abs=1e-3), key
        if '_2D_' in key:
            assert metrics[f'pred_instances/{key}'] == pytest.approx(
                value, abs=1e-3), key


def test_score_2d_heatmap_drops_the_depth_confidence(many_objects_root):
    """``test_cfg.score_2d``: the regressed 2D boxes score heatmap peak x
    exp(-s) by default (the 3D score), the peak alone with 'heatmap'; the
    3D scores and every box are the same either way."""
    model = MODELS.build(copy.deepcopy(LIGHT_MODEL))
    head = model.bbox_head
    sample = _dataset(many_objects_root)[0]['data_samples']
    sample.set_metainfo(dict(batch_input_shape=IMG_SCALE[::-1]))
    feat_hw = (IMG_SCALE[1] // 4, IMG_SCALE[0] // 4)
    outs, num = _perfect_outputs(head, [sample], feat_hw, first_rank=100)
    assert num >= 2
    meta = [sample.metainfo]
    with_depth = head.predict_by_feat(*outs, batch_img_metas=meta)
    heatmap = head.predict_by_feat(*outs, batch_img_metas=meta,
                                   cfg=dict(score_2d='heatmap'))
    from ddml.models.heads.monodle_head import _HEATMAP_CLAMP
    peak = torch.sigmoid(torch.tensor(10.)).clamp(max=1 - _HEATMAP_CLAMP)
    (r3, r2), (h3, h2) = [(a[0], b[0]) for a, b in (with_depth, heatmap)]
    torch.testing.assert_close(r2.scores, r3.scores_3d)
    assert (r2.scores < peak - 1e-3).all()  # depth confidences < 1
    torch.testing.assert_close(h2.scores, torch.full_like(h2.scores, peak))
    torch.testing.assert_close(h3.scores_3d, r3.scores_3d)
    torch.testing.assert_close(h2.bboxes, r2.bboxes)
    with pytest.raises(ValueError, match='score_2d'):
        _head(test_cfg=dict(score_2d='depth'))


# ----------------------------------------------------------------------
# the releases' target rules: 'UnKnown' objects, annotated 2D boxes,
# batches without a positive
# ----------------------------------------------------------------------
# a second car at 20 m, gravity centre (-2, 0.5, 20) -> (40, 22.5): cell
# (10, 5), apart from CAR's (15, 6)
CAR_20M = ((-2., 1.25, 20.), (4., 1.5, 1.6), 0.1, 2)


def _with_codes(sample, codes):
    sample.gt_instances_3d.difficulty = torch.tensor(codes)
    return sample


def test_unknown_difficulty_objects_are_background():
    """``skip_unknown_difficulty``: an object of code -1 gets no heatmap
    peak and no term of any loss, i.e. every loss equals that of the image
    without it; by default it is trained like any other."""
    head = _head(skip_unknown_difficulty=True)
    for name, values in CONSTANTS.items():
        _set_constant(head, name, values)
    feat = torch.randn(1, 4, 16, 32)
    both = _with_codes(_sample([CAR, CAR_20M]), [0, -1])
    alone = _with_codes(_sample([CAR]), [0])
    got, want = head.loss([feat], [both]), head.loss([feat], [alone])
    assert set(got) == set(want)
    for key in want:
        assert got[key].item() == pytest.approx(want[key].item(), rel=1e-6)
    # the targets hold one object and one peak
    metas = [both.metainfo]
    targets = head.get_targets([both.gt_instances_3d], [both.gt_instances],
                               (1, 3, 16, 32), metas, (4., 4.))
    assert len(targets['labels']) == 1
    assert int(targets['heatmap'].eq(1).sum()) == 1
    # default: the object of no difficulty is trained
    plain = _head()
    plain.load_state_dict(head.state_dict())
    assert plain.loss([feat], [both])['loss_depth'].item() != pytest.approx(
        want['loss_depth'].item(), rel=1e-6)
    # an image whose only object has no difficulty trains as a negative
    only = _with_codes(_sample([CAR_20M]), [-1])
    losses = head.loss([feat], [only])
    for key in ('loss_offset_2d', 'loss_size_2d', 'loss_depth',
                'loss_offset_3d', 'loss_size_3d', 'loss_heading'):
        assert losses[key].item() == 0 and losses[key].requires_grad


def test_unknown_difficulty_needs_the_codes():
    head = _head(skip_unknown_difficulty=True)
    with pytest.raises(KeyError, match='LoadObjectDifficulty'):
        _loss_terms(head, [_sample([CAR])])
    with pytest.raises(ValueError, match='codes'):
        _loss_terms(head, [_with_codes(_sample([CAR]), [3])])
    # an image without objects needs none
    _loss_terms(head, [_sample([])])


def test_annotated_boxes_give_the_2d_targets():
    """``bbox2d_source='annotated'``: 2D offset, 2D size and the heatmap
    radius come from ``gt_instances.bboxes_annotated``; the 3D targets and
    the peak's cell do not change."""
    sample = _sample([CAR])
    # a larger annotated box, centre (62, 26): offset_2d (0.5, 0.5) and
    # size (10, 8) cells
    sample.gt_instances.bboxes_annotated = torch.tensor(
        [[42., 10., 82., 42.]])
    args = ([sample.gt_instances_3d], [sample.gt_instances], (1, 3, 16, 32),
            [sample.metainfo], (4., 4.))
    anno = _head(bbox2d_source='annotated').get_targets(*args)
    proj = _head().get_targets(*args)
    torch.testing.assert_close(anno['size_2d'], torch.tensor([[10., 8.]]))
    torch.testing.assert_close(anno['offset_2d'], torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(proj['size_2d'], torch.tensor([[4., 4.5]]))
    for key in ('cells', 'offset_3d', 'depth', 'size_3d', 'heading_bin',
                'heading_res'):
        torch.testing.assert_close(anno[key], proj[key])
    # the radius grows with the box: the Gaussian spreads further
    radius = int(centernet_gaussian_radius(8., 10., 0.7))
    assert radius > 1
    row = anno['heatmap'][0, 2, 6]
    assert bool((row[15 - radius:15 + radius + 1] > 0).all())
    assert int((proj['heatmap'][0, 2, 6] > 0).sum()) == 3
    # without the field: an error naming the transforms
    with pytest.raises(KeyError, match='LoadAnnotatedBoxes2D'):
        _loss_terms(_head(bbox2d_source='annotated'), [_sample([CAR])])
    with pytest.raises(ValueError, match='bbox2d_source'):
        _head(bbox2d_source='label')


def test_a_batch_without_positives_trains_as_negatives():
    """Images without a kept object (none loaded, all beyond 65 m, all of
    no difficulty): the heatmap loss is CornerNet's pure-negative term, the
    regression terms are zero, and everything back-propagates."""
    head = _head(skip_unknown_difficulty=True)
    for name, values in CONSTANTS.items():
        _set_constant(head, name, values)
    far = ((7., 1.25, 70.), ) + CAR[1:]
    batch = [_sample([]), _with_codes(_sample([far]), [0]),
             _with_codes(_sample([CAR]), [-1])]
    feat = torch.randn(3, 4, 16, 32, requires_grad=True)
    losses = head.loss([feat], batch)
    prob = 1 / (1 + math.exp(1.))
    assert losses['loss_heatmap'].item() == pytest.approx(
        3 * _expected_heatmap_loss(prob, []), rel=1e-5)
    for key, value in losses.items():
        if key != 'loss_heatmap':
            assert value.item() == 0, key
    sum(losses.values()).backward()
    assert head.heatmap[-1].weight.grad is not None
    assert torch.isfinite(feat.grad).all()
