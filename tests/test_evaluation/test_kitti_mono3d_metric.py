"""KittiMono3DMetric: mmdet3d's KittiMetric with the regressed 2D boxes.

On the real KITTI frames of ``../shared/data`` (infos from ddml's
converter), with mmdet3d's own ``KittiMetric`` as the reference:

* predictions of a (light, untrained) MonoDLE: ``'projected'`` is
  ``KittiMetric`` exactly; ``'regressed'`` writes the same results with the
  regressed 2D boxes;
* perfect predictions (head outputs equal to the encoded ground truth,
  2D targets from the annotated boxes, decoded by ``MonoDLEHead``):
  ``'regressed'`` gives the 2D AP of the label boxes themselves, and
  KITTI's minimum-height rule then reads the regressed boxes, in the 3D
  figures too.
"""
import copy

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmdet3d.registry import DATASETS, METRICS, MODELS  # noqa: E402
from mmdet3d.structures import Det3DDataSample  # noqa: E402

import ddml  # noqa: E402,F401  (registration)

CLASSES = ['Pedestrian', 'Cyclist', 'Car']
IMG_SCALE = (1280, 384)
FEAT_HW = (IMG_SCALE[1] // 4, IMG_SCALE[0] // 4)
#: MonoDLE on the CPU demo's light backbone (one 64-channel map, stride 4)
LIGHT_MONODLE = dict(
    type='MonoDLE',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
        out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), norm_eval=False,
        style='pytorch', init_cfg=None),
    neck=dict(
        type='SECONDFPN', in_channels=[32, 64, 128, 256],
        out_channels=[16, 16, 16, 16], upsample_strides=[1, 2, 4, 8],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    bbox_head=dict(type='MonoDLEHead', num_classes=3, in_channels=64,
                   feat_channels=16, bbox2d_source='annotated'),
    test_cfg=dict(topk=50, score_thr=0.2))
STRICT = 'KITTI/{}_{}_AP40_moderate_strict'


def _dataset(root, pipeline, test_mode):
    init_default_scope('mmdet3d')
    return DATASETS.build(
        dict(type='KittiDataset', data_root=str(root),
             ann_file='kitti_infos_val.pkl',
             data_prefix=dict(img='training/image_2'), pipeline=pipeline,
             modality=dict(use_lidar=False, use_camera=True),
             load_type='fov_image_based', test_mode=test_mode,
             filter_empty_gt=False, metainfo=dict(classes=CLASSES),
             box_type_3d='Camera'))


def _metric(root, cls='KittiMono3DMetric', **kwargs):
    metric = METRICS.build(
        dict(type=cls, ann_file=str(root / 'kitti_infos_val.pkl'),
             **kwargs))
    metric.dataset_meta = dict(classes=CLASSES)
    return metric


def _evaluate(metric, predictions):
    for pred in predictions:
        metric.process({}, [copy.deepcopy(pred).to_dict()])
    return metric.compute_metrics(metric.results)


def _formatted(metric, predictions):
    """The KITTI-format results the metric evaluates (its det annos)."""
    from mmengine.fileio import load
    for pred in predictions:
        metric.process({}, [copy.deepcopy(pred).to_dict()])
    metric.classes = CLASSES
    metric.data_infos = metric.convert_annos_to_kitti_annos(
        load(metric.ann_file))
    results, tmp = metric.format_results(metric.results, classes=CLASSES)
    if tmp is not None:
        tmp.cleanup()
    return results['pred_instances_3d']


@pytest.fixture(scope='module')
def model_predictions(real_kitti_root):
    """Predictions of an untrained light MonoDLE on the real val frames
    (its top 20 peaks, score threshold 0)."""
    pipeline = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='AffineResize', img_scale=IMG_SCALE, down_ratio=4),
        dict(type='Pack3DDetInputs', keys=['img'])
    ]
    dataset = _dataset(real_kitti_root, pipeline, test_mode=True)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(LIGHT_MONODLE))
    model.init_weights()
    model.eval()
    model.bbox_head.test_cfg.update(topk=20, score_thr=0.)
    preds = []
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            preds += model.test_step(
                dict(inputs=dict(img=[item['inputs']['img']]),
                     data_samples=[item['data_samples']]))
    return preds


def test_projected_is_kittimetric_and_regressed_swaps_only_the_box(
        real_kitti_root, model_predictions):
    stock = _formatted(_metric(real_kitti_root, 'KittiMetric'),
                       model_predictions)
    projected = _formatted(_metric(real_kitti_root), model_predictions)
    regressed = _formatted(
        _metric(real_kitti_root, bbox2d_source='regressed'),
        model_predictions)
    written = 0
    for ref, proj, reg, pred in zip(stock, projected, regressed,
                                    model_predictions, strict=True):
        for key in ref:
            np.testing.assert_array_equal(proj[key], ref[key])
            if key != 'bbox':
                np.testing.assert_array_equal(reg[key], ref[key])
        # every written box is the regressed box of its 3D result,
        # clipped to the image as KittiMetric clips every box
        p3d, p2d = pred.pred_instances_3d, pred.pred_instances
        h, w = pred.metainfo['ori_shape'][:2]
        bottoms = p3d.bboxes_3d.tensor[:, :3].numpy()
        for loc, score, box in zip(reg['location'], reg['score'],
                                   reg['bbox'], strict=True):
            j = np.flatnonzero(np.all(np.isclose(bottoms, loc), axis=1) &
                               np.isclose(p3d.scores_3d.numpy(), score))
            assert len(j) == 1
            want = p2d.bboxes[j[0]].numpy().copy()
            want[:2] = np.maximum(want[:2], 0)
            want[2:] = np.minimum(want[2:], [w, h])
            np.testing.assert_allclose(box, want, rtol=1e-6)
            written += 1
        assert not np.allclose(reg['bbox'], ref['bbox'])
    assert written > 40
    # and the figures of 'projected' are KittiMetric's
    a = _evaluate(_metric(real_kitti_root, 'KittiMetric'), model_predictions)
    b = _evaluate(_metric(real_kitti_root), model_predictions)
    assert a == b


def test_regressed_needs_aligned_2d_results(real_kitti_root,
                                            model_predictions):
    metric = _metric(real_kitti_root, bbox2d_source='regressed')
    # a head with test_cfg.pred_2d=False returns empty 2D results
    pred = copy.deepcopy(model_predictions[0])
    pred.pred_instances = InstanceData()
    with pytest.raises(ValueError, match='pred_2d=True'):
        metric.process({}, [pred.to_dict()])
    pred = copy.deepcopy(model_predictions[0])
    pred.pred_instances = pred.pred_instances[:3]
    with pytest.raises(ValueError, match='index-aligned'):
        metric.process({}, [pred.to_dict()])
    with pytest.raises(ValueError, match='bbox2d_source'):
        _metric(real_kitti_root, bbox2d_source='annotated')


# ----------------------------------------------------------------------
# perfect predictions
# ----------------------------------------------------------------------
def _perfect(head, sample):
    """Head outputs equal to ``sample``'s encoded ground truth, decoded."""
    metas = [sample.metainfo]
    shape = (1, head.num_classes) + FEAT_HW
    t = head.get_targets([sample.gt_instances_3d], [sample.gt_instances],
                         shape, metas, head._stride(metas, FEAT_HW))
    h, w = FEAT_HW
    nb = head.num_heading_bins
    outs = dict(heatmap=torch.full(shape, -10.))
    for name, ch in (('offset_2d', 2), ('size_2d', 2), ('depth', 2),
                     ('offset_3d', 2), ('size_3d', 3), ('heading', 2 * nb)):
        outs[name] = torch.zeros(1, ch, h, w)
    x, y = t['cells'][:, 0], t['cells'][:, 1]
    outs['heatmap'][0, t['labels'], y, x] = 10.
    for name in ('offset_2d', 'size_2d', 'offset_3d', 'size_3d'):
        outs[name][0, :, y, x] = t[name].t()
    outs['depth'][0, 0, y, x] = head.bbox_coder.depth_to_raw(t['depth'])
    # distinct scores (KITTI samples its thresholds from them)
    rank = torch.arange(len(x), dtype=torch.float32)
    outs['depth'][0, 1, y, x] = -torch.log1p(-(rank + 1) / 1e3)
    outs['heading'][0, t['heading_bin'], y, x] = 10.
    outs['heading'][0, nb + t['heading_bin'], y, x] = t['heading_res']
    names = ('heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d',
             'size_3d', 'heading')
    return head.predict_by_feat(*(outs[k] for k in names),
                                batch_img_metas=metas), len(x)


@pytest.fixture(scope='module')
def perfect_predictions(real_kitti_root):
    pipeline = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
             with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
        dict(type='LoadAnnotatedBoxes2D'),
        dict(type='AffineResizeKeepInstanceKeys', img_scale=IMG_SCALE,
             down_ratio=4),
        dict(type='Pack3DDetInputsWithDifficulty',
             keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                   'gt_labels_3d', 'centers_2d', 'depths',
                   'gt_bboxes_annotated'])
    ]
    dataset = _dataset(real_kitti_root, pipeline, test_mode=False)
    model = MODELS.build(copy.deepcopy(LIGHT_MONODLE))
    preds, objects = [], 0
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        sample.set_metainfo(dict(batch_input_shape=IMG_SCALE[::-1]))
        (res_3d, res_2d), num = _perfect(model.bbox_head, sample)
        assert len(res_3d[0]) == num == len(sample.gt_instances_3d)
        objects += num
        pred = Det3DDataSample(metainfo=sample.metainfo)
        model.add_pred_to_datasample([pred], res_3d, res_2d)
        preds.append(pred)
    assert objects == 11
    return preds


def _labels_as_detections(metric):
    """KITTI AP of the labels themselves (what a perfect detector gets;
    with N < 40 boxes of a class AP40 is at most 100 N / 40)."""
    from mmengine.fileio import load

    from mmdet3d.evaluation import kitti_eval
    annos = metric.convert_annos_to_kitti_annos(load(metric.ann_file))
    gts = [a['kitti_annos'] for a in annos]
    dets = []
    for gt in gts:
        keep = gt['name'] != 'DontCare'
        det = {k: copy.deepcopy(v[keep]) for k, v in gt.items()}
        det['score'] = 1 - np.arange(int(keep.sum())) / 1e3
        dets.append(det)
    return kitti_eval(gts, dets, CLASSES, eval_types=['bbox', 'bev', '3d'])[1]


def test_perfect_regressed_boxes_give_the_labels_2d_ap(real_kitti_root,
                                                       perfect_predictions):
    """The regressed boxes of perfect outputs are the label boxes: with
    ``'regressed'`` every figure of the 3D results equals that of the
    labels themselves, 2D AP and AOS included, and the 3D results' 2D AP
    equals that of the 2D results."""
    metric = _metric(real_kitti_root, bbox2d_source='regressed')
    oracle = _labels_as_detections(metric)
    got = _evaluate(metric, perfect_predictions)
    for key, value in oracle.items():
        assert got[f'pred_instances_3d/{key}'] == pytest.approx(
            value, abs=1e-3), key
    car_2d = STRICT.format('Car', '2D')
    assert got[f'pred_instances_3d/{car_2d}'] == pytest.approx(
        got[f'pred_instances/{car_2d}'], abs=1e-3)
    assert got[f'pred_instances_3d/{STRICT.format("Car", "3D")}'] > 0


def test_kitti_height_rule_reads_the_written_box(real_kitti_root,
                                                 perfect_predictions):
    """Regressed boxes 20 px tall: KITTI ignores detections lower than
    25 px at moderate, so with ``'regressed'`` the perfect 3D boxes score
    AP3D 0 there, while ``KittiMetric`` (projected boxes) keeps its AP."""
    short = copy.deepcopy(perfect_predictions)
    for pred in short:
        boxes = pred.pred_instances.bboxes
        boxes[:, 3] = boxes[:, 1] + 20.
    key = f'pred_instances_3d/{STRICT.format("Car", "3D")}'
    regressed = _evaluate(_metric(real_kitti_root, bbox2d_source='regressed'),
                          short)
    stock = _evaluate(_metric(real_kitti_root, 'KittiMetric'), short)
    assert stock[key] > 0
    assert regressed[key] == 0
