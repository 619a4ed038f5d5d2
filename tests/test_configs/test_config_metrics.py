"""Every config's evaluator gives the figures it must (issue 16, item 3).

The val ground truth, as the config's own test pipeline delivers it
(``eval_ann_info`` of the packed data samples), is fed back as predictions
through the config's own test evaluator (built from the config, run by
mmengine's ``Evaluator`` as the test loop runs it):

* KITTI configs, on 40 synthetic frames from ddml's renderer with at least
  41 moderate ground truths of every class (KITTI's AP40 needs 41 for a
  perfect score): AP40 100 (3D, BEV, 2D; moderate) for every class of the
  config; and known perturbations give known figures: every heading turned
  by pi keeps them at 100 (the boxes are the same; KittiMetric returns no
  AOS figure, it only prints it); every box moved along
  its own heading by a quarter of its length (3D and BEV IoU exactly 0.6
  for Cars, whose strict threshold is 0.7) and by 3/7 of it for
  Pedestrians and Cyclists (IoU 0.4, strict threshold 0.5) gives strict 3D
  and BEV AP 0 and loose AP 100; the predictions of one class removed give
  that class AP 0 and the others 100.
* Waymo configs, on the real Waymo frame of ``../shared/data``: AP / APH /
  LET-AP 1 for the Vehicle class, and headings turned by pi give APH 0.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import ddml  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(c for c in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in c.parts)
KITTI = [c for c in CONFIGS if 'kitti-mono3d' in c.name]
WAYMO = [c for c in CONFIGS if 'waymo' in c.name]
CLASSES = ('Pedestrian', 'Cyclist', 'Car')
PREFIX = 'Kitti metric/pred_instances_3d/KITTI/'
#: Shift along the heading, as a fraction of the length, giving IoU 0.6
#: (Car) / 0.4 (others) for two equal boxes: (1 - iou) / (1 + iou).
SHIFT = {'Car': 0.4 / 1.6, 'Pedestrian': 0.6 / 1.4, 'Cyclist': 0.6 / 1.4}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO / 'configs'))


@pytest.fixture(scope='module')
def many_objects_root(tmp_path_factory) -> Path:
    """40 synthetic val frames at KITTI's size, all three classes, dense
    enough for >= 41 moderate ground truths of each (about 5 s)."""
    from ddml.data_tools.synthetic_kitti import SceneLayout, make_demo_dataset
    root = tmp_path_factory.mktemp('config_metrics')
    layout = SceneLayout(
        class_probs=(('Car', 1.0), ('Pedestrian', 1.0), ('Cyclist', 1.0)),
        num_objects=(8, 14), depth_range=(5.0, 35.0), u_range=(0.05, 0.95))
    make_demo_dataset(root, 1, 40, seed=16, scale=1.0, workers=1,
                      progress=False, convert=True, layout=layout)
    return root


def _moderate_counts(ann_file: Path) -> dict:
    """KITTI's moderate ground truths per class (2D height >= 25 px,
    occlusion <= 1, truncation <= 0.3)."""
    from mmengine.fileio import load
    counts = dict.fromkeys(CLASSES, 0)
    for info in load(str(ann_file))['data_list']:
        for inst in info['instances']:
            label = inst['bbox_label']
            x1, y1, x2, y2 = inst['bbox']
            if 0 <= label < 3 and y2 - y1 >= 25 and \
                    inst['occluded'] <= 1 and inst['truncated'] <= 0.3:
                counts[CLASSES[label]] += 1
    return counts


def _dataset_and_evaluator(config: Path, root: Path, ann_name: str):
    """The config's test dataset and evaluator, pointed at ``root``."""
    from mmdet3d.registry import DATASETS
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(str(config))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = str(root)
    ds_cfg.ann_file = ann_name
    ds_cfg.pop('load_interval', None)
    dataset = DATASETS.build(ds_cfg)
    metrics = cfg.test_evaluator
    metrics = list(metrics) if isinstance(metrics, (list, tuple)) \
        else [metrics]
    for metric in metrics:
        metric.ann_file = str(root / ann_name)

    def evaluator():
        ev = Evaluator([dict(m) for m in metrics])
        ev.dataset_meta = dataset.metainfo
        return ev

    return dataset, evaluator


def _ground_truth(dataset):
    """(data sample, GT camera boxes, labels) of every frame, through the
    dataset's test pipeline; labels of other classes (-1) dropped."""
    out = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        ann = sample.eval_ann_info
        labels = torch.as_tensor(ann['gt_labels_3d'])
        keep = labels >= 0
        out.append((sample, ann['gt_bboxes_3d'][keep], labels[keep]))
    return out


def _evaluate(evaluator, frames, edit=None) -> dict:
    """Feeds the ground truth (edited by ``edit(boxes, labels)``, which
    returns new boxes and labels) as predictions; distinct scores."""
    from mmdet3d.structures import Det3DDataSample
    from mmengine.structures import InstanceData

    from ddml.structures import project_boxes_to_image
    ev = evaluator()
    rank = 0
    for sample, boxes, labels in frames:
        boxes = boxes.clone()
        if edit is not None:
            boxes, labels = edit(boxes, labels)
        pred = Det3DDataSample(metainfo=sample.metainfo)
        n = len(labels)
        scores = 1.0 - (rank + torch.arange(n)) / 1e4
        pred.pred_instances_3d = InstanceData(
            bboxes_3d=boxes, labels_3d=labels, scores_3d=scores)
        # 2D results index-aligned with the 3D ones, as MonoDLE returns
        # them (read by KittiMono3DMetric(bbox2d_source='regressed')): here
        # the clipped projections, i.e. the boxes KittiMetric would write
        meta = sample.metainfo
        pred.pred_instances = InstanceData(
            bboxes=project_boxes_to_image(
                boxes, meta['cam2img'],
                meta.get('ori_shape', meta.get('img_shape'))),
            labels=labels, scores=scores)
        rank += n
        ev.process([pred])
    return ev.evaluate(len(frames))


def _turn(boxes, labels):
    boxes.tensor[:, 6] += np.pi
    return boxes, labels


def _shift_along_heading(boxes, labels, classes):
    """Moves each camera box (length along (cos ry, 0, -sin ry)) by
    SHIFT[class] of its length."""
    t = boxes.tensor
    frac = torch.tensor([SHIFT[classes[int(c)]] for c in labels],
                        dtype=t.dtype)
    d = frac * t[:, 3]
    t[:, 0] += d * torch.cos(t[:, 6])
    t[:, 2] -= d * torch.sin(t[:, 6])
    return boxes, labels


def _key(cls, kind, level='moderate', mode='strict'):
    return f'{PREFIX}{cls}_{kind}_AP40_{level}_{mode}'


# about 8 s a config (4 minutes for all of them on 2 cores)
@pytest.mark.slow
@pytest.mark.parametrize('config', KITTI, ids=_rel)
def test_kitti_config_evaluator_on_ground_truth(config, many_objects_root):
    ann = many_objects_root / 'kitti_infos_val.pkl'
    dataset, evaluator = _dataset_and_evaluator(config, many_objects_root,
                                                'kitti_infos_val.pkl')
    classes = tuple(dataset.metainfo['classes'])
    assert set(classes) <= set(CLASSES), classes
    counts = _moderate_counts(ann)
    assert all(counts[c] >= 41 for c in classes), counts
    frames = _ground_truth(dataset)
    assert sum(len(f[2]) for f in frames) >= 41 * len(classes)

    perfect = _evaluate(evaluator, frames)
    for cls in classes:
        for kind in ('3D', 'BEV', '2D'):
            assert perfect[_key(cls, kind)] == pytest.approx(100.0), (
                cls, kind, perfect[_key(cls, kind)])

    turned = _evaluate(evaluator, frames, _turn)
    for cls in classes:
        for kind in ('3D', 'BEV', '2D'):
            assert turned[_key(cls, kind)] == pytest.approx(100.0), (cls,
                                                                     kind)

    shifted = _evaluate(
        evaluator, frames,
        lambda b, lab: _shift_along_heading(b, lab, classes))
    for cls in classes:
        for kind in ('3D', 'BEV'):
            assert shifted[_key(cls, kind)] == pytest.approx(0.0), (cls,
                                                                    kind)
            assert shifted[_key(cls, kind, mode='loose')] == \
                pytest.approx(100.0), (cls, kind)

    gone = classes[-1]
    dropped = _evaluate(
        evaluator, frames,
        lambda b, lab: (b[lab != classes.index(gone)],
                        lab[lab != classes.index(gone)]))
    for cls in classes:
        want = 0.0 if cls == gone else 100.0
        for kind in ('3D', 'BEV', '2D'):
            assert dropped[_key(cls, kind)] == pytest.approx(want), (cls,
                                                                     kind)


@pytest.mark.parametrize('config', WAYMO, ids=_rel)
def test_waymo_config_evaluator_on_ground_truth(config, real_waymo_root):
    dataset, evaluator = _dataset_and_evaluator(config, real_waymo_root,
                                                'waymo_infos_val.pkl')
    frames = _ground_truth(dataset)
    assert len(frames) == 1 and len(frames[0][2]) >= 1
    perfect = _evaluate(evaluator, frames)
    for key in ('AP', 'APH'):
        for level in (1, 2):
            assert perfect[f'Waymo/Vehicle/LEVEL_{level}/{key}'] == \
                pytest.approx(1.0, abs=1e-6), (key, level)
    for key in ('LET-AP', 'LET-APL', 'LET-APH'):
        assert perfect[f'Waymo/Vehicle/LEVEL_2/{key}'] == \
            pytest.approx(1.0, abs=1e-6), key
    turned = _evaluate(evaluator, frames, _turn)
    assert turned['Waymo/Vehicle/LEVEL_1/AP'] == pytest.approx(1.0,
                                                               abs=1e-6)
    assert turned['Waymo/Vehicle/LEVEL_1/APH'] == pytest.approx(0.0,
                                                                abs=1e-6)
