"""One pass of a trained detector over a dataset split.

:func:`evaluate_checkpoint` runs the detector's ordinary ``predict`` on each
image (timed), reads the object descriptors at the ground-truth projected
centres along the training route (``DepthDiscriminativeDetector``'s
``extract_feat`` -> ``aux_feature_map`` -> ``object_descriptors``; a plain
detector is wrapped without losses for that, :func:`descriptor_reader`),
and then evaluates the predictions with the benchmark of the config's data
(:func:`detection_benchmark`): mmdet3d's ``KittiMetric`` (3D, BEV, 2D AP)
for KITTI-format data, ddml's ``WaymoMono3DMetric`` (AP/APH LEVEL_1/2 by
range, LET-3D-AP/APL/APH) for a Waymo config; and with ddml's
``CentreDistanceMetric`` and the depth error of matched detections for
both (on Waymo, both read the camera's own labels, ``cam_instances``).

The images go through the config's test pipeline, with the annotations
loaded as well (``LoadAnnotations3D`` and the GT keys of
``Pack3DDetInputs``), so predictions are those of ``tools/test.py`` while
descriptors are read as in training (without augmentation).
"""
import copy
import logging
import os
import os.path as osp
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data_tools.kitti_converter import SPLIT_FOLDERS, split_image_prefix
from ..data_tools.synthetic_waymo import SPLIT_PREFIXES, waymo_data_prefix
from .demo_report import depth_errors, match_detections  # noqa: F401
from .descriptor_analysis import descriptor_settings

__all__ = ['CENTRE_DISTANCE_KEYS', 'annotated_pipeline', 'load_model',
           'build_split_dataset', 'check_split_data', 'descriptor_reader',
           'detection_benchmark', 'camera_frame_annos', 'camera_view_infos',
           'evaluate_checkpoint', 'kitti_summary', 'evaluate_run']

#: ``CentreDistanceMetric`` figures copied into a row as ``cd_<key>``.
CENTRE_DISTANCE_KEYS = (
    'Car_AP_0.5m', 'Car_AP_1.0m', 'Car_AP_2.0m', 'Car_AP_4.0m', 'Car_mAP',
    'mAP', 'depth_abs_err_0-20m', 'depth_abs_err_20-40m',
    'depth_abs_err_40m+', 'depth_count_0-20m', 'depth_count_20-40m',
    'depth_count_40m+')

#: ``data_prefix['img']`` values that :func:`build_split_dataset` points
#: at the folder of the split it reads.
KITTI_IMAGE_PREFIXES = {split_image_prefix(s) for s in SPLIT_FOLDERS}
#: ``data_prefix`` values of a Waymo dataset (``training/image_0``,
#: ``testing/velodyne``, ...) that :func:`build_split_dataset` points at
#: the folders of the split it reads.
WAYMO_PREFIXES = {v for s in SPLIT_PREFIXES
                  for v in waymo_data_prefix(s).values()}

_GT_KEYS = ['gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d', 'gt_labels_3d',
            'centers_2d', 'depths']


def annotated_pipeline(pipeline: List[dict]) -> List[dict]:
    """The test pipeline plus ground-truth loading and packing.

    Args:
        pipeline (list[dict]): A test pipeline starting with an image
            loading transform and ending with ``Pack3DDetInputs``.

    Returns:
        list[dict]: A copy with ``LoadAnnotations3D`` (2D/3D boxes, labels,
        centres and depths) after the image loading step and the GT keys
        added to ``Pack3DDetInputs``.
    """
    pipeline = copy.deepcopy(list(pipeline))
    if any(t.get('type') == 'LoadAnnotations3D' for t in pipeline):
        pipeline = [
            t for t in pipeline if t.get('type') != 'LoadAnnotations3D'
        ]
    load_ann = dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
                    with_attr_label=False, with_bbox_3d=True,
                    with_label_3d=True, with_bbox_depth=True)
    pos = next((i for i, t in enumerate(pipeline)
                if 'LoadImage' in str(t.get('type', ''))), 0)
    pipeline.insert(pos + 1, load_ann)
    for t in pipeline:
        if t.get('type') == 'Pack3DDetInputs':
            keys = list(t.get('keys', ['img']))
            t['keys'] = keys + [k for k in _GT_KEYS if k not in keys]
    return pipeline


def _split_ann_file(ann_file: str, split: Optional[str]) -> str:
    if split is None:
        return ann_file
    new, n = re.subn(r'_(train|val|trainval|test)\.pkl$', f'_{split}.pkl',
                     ann_file)
    if n == 0:
        raise ValueError(f'cannot derive the {split!r} info file from '
                         f'{ann_file!r}; pass an ann_file ending in '
                         '_train/_val/_trainval/_test.pkl')
    return new


def check_split_data(cfg, split: Optional[str] = 'val',
                     data_root: Optional[str] = None) -> str:
    """Check, before a model is built, that the info file
    :func:`build_split_dataset` reads for ``split`` is there.

    Returns:
        str: The info file.

    Raises:
        ddml.engine.cli.MissingPathError: Naming the file and the fix
            (``--data-root``, ``--split``), in one line.
    """
    from ..engine.cli import MissingPathError
    ds_cfg = cfg.val_dataloader.dataset
    ann_file = _split_ann_file(ds_cfg.ann_file, split)
    root = data_root if data_root is not None else ds_cfg.get('data_root')
    info = ann_file if osp.isabs(ann_file) or not root else osp.join(
        root, ann_file)
    if not osp.isfile(info):
        raise MissingPathError(
            f'--split {split}: its info file {info} is not there; give '
            '--data-root, the dataset root that holds it, or another '
            '--split')
    return info


def load_model(cfg, checkpoint: Optional[str], device: str = 'cpu'):
    """Build ``cfg.model`` and load ``checkpoint`` into it.

    With a checkpoint this is :func:`ddml.apis.init_model` (strict keys; a
    ``DepthDiscriminativeDetector`` checkpoint given with a plain detector
    config is reduced to the wrapped detector, a plain one loads into a
    ``ddml_*`` config's detector). Without one the model is initialised
    with ``init_weights``, as training starts (e.g. SMOKE's bias prior).

    Returns:
        tuple: ``(model, detector)``: the built model (eval mode) and the
        detector that predicts (the wrapped one for the wrapper).
    """
    import ddml  # noqa: F401  (registers the add-on, checkpoint loading)
    if checkpoint is not None:
        from ..apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    else:
        from mmengine.registry import init_default_scope

        from mmdet3d.registry import MODELS
        init_default_scope(cfg.get('default_scope', 'mmdet3d'))
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.to(device).eval()
    detector = getattr(model, 'detector', model) \
        if cfg.model.get('type') == 'DepthDiscriminativeDetector' else model
    return model, detector


def build_split_dataset(cfg, split: Optional[str] = 'val',
                        data_root: Optional[str] = None):
    """The val dataset of ``cfg`` on ``split`` with annotations loaded.

    Args:
        cfg (Config): Model config.
        split (str, optional): Info split (``train``, ``val``, ...); None
            keeps the config's val ``ann_file``.
        data_root (str, optional): Replaces the dataset's ``data_root``.

    Returns:
        Dataset: ``test_mode=False`` (annotations parsed) and
        ``filter_empty_gt=False`` (every frame, in order); a KITTI image
        prefix follows the split (``testing/image_2`` for ``test``,
        :func:`ddml.data_tools.kitti_converter.split_image_prefix`), and so
        do Waymo's (``testing/image_0`` etc.,
        :func:`ddml.data_tools.synthetic_waymo.waymo_data_prefix`).
    """
    from mmdet3d.registry import DATASETS
    ds_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    ds_cfg.ann_file = _split_ann_file(ds_cfg.ann_file, split)
    prefix = ds_cfg.get('data_prefix', None) or {}
    if split is not None and prefix.get('img') in KITTI_IMAGE_PREFIXES:
        # KITTI keeps the held-out split's frames in testing/
        ds_cfg.data_prefix = dict(prefix, img=split_image_prefix(split))
    elif split is not None and set(prefix.values()) & WAYMO_PREFIXES:
        # so does Waymo's converter (its test split), for every camera
        waymo = waymo_data_prefix(split)
        ds_cfg.data_prefix = {k: waymo.get(k, v) for k, v in prefix.items()}
    if data_root is not None:
        ds_cfg.data_root = data_root
    pipeline = cfg.get('test_pipeline', None) or ds_cfg.pipeline
    ds_cfg.pipeline = annotated_pipeline(pipeline)
    ds_cfg.test_mode = False
    ds_cfg.filter_empty_gt = False
    return DATASETS.build(ds_cfg)


def descriptor_reader(model, cfg):
    """The ``DepthDiscriminativeDetector`` whose :meth:`aux_feature_map`
    and :meth:`object_descriptors` read a model's object descriptors.

    For a wrapper config that is the model itself; a plain detector is
    wrapped without any loss, with the descriptor options of
    :func:`descriptor_settings` (the wrapper's defaults), so that both
    read descriptors along the same route as training.

    Args:
        model (nn.Module): The built model (wrapper or plain detector).
        cfg (Config): Its config.

    Returns:
        DepthDiscriminativeDetector: The reader (eval mode).
    """
    from ..models.detectors import DepthDiscriminativeDetector
    if isinstance(model, DepthDiscriminativeDetector):
        return model
    s = descriptor_settings(cfg.model)
    return DepthDiscriminativeDetector(
        model, feature_level=s['feature_level'],
        descriptor_pool=s['descriptor_pool'], qi_loss=None,
        depth_map_head=None, min_depth=s['min_depth'],
        max_depth=s['max_depth'],
        ignore_classes=s['ignore_classes']).eval()


def detection_benchmark(cfg) -> str:
    """Which benchmark evaluates a config's detections.

    Args:
        cfg (Config): Model config.

    Returns:
        str: ``'waymo'`` when its ``val_evaluator`` is (or lists)
        ``WaymoMono3DMetric``, else ``'kitti'`` (KITTI-format data,
        ``KittiMetric``).
    """
    evaluators = cfg.get('val_evaluator', None) or []
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    types = {e.get('type') for e in evaluators if e}
    return 'waymo' if 'WaymoMono3DMetric' in types else 'kitti'


def camera_frame_annos(results: List[dict], dataset
                       ) -> Tuple[List[dict], List[dict]]:
    """Per frame, KITTI-style annotation dicts of the predictions and the
    ground truth (``name``, ``bbox``, ``location``, ``score``: what
    :func:`match_detections` reads), from camera-frame boxes alone: for
    data ``KittiMetric`` cannot format (Waymo).

    Predictions: the bottom centres of ``bboxes_3d`` and the 2D boxes of
    their projected corners clipped to the image, as ``KittiMetric``
    formats them; a box with a corner behind the camera or whose 2D box
    misses the image is left out (as there). Ground truth: the dataset's
    parsed annotations (its classes; for Waymo ``cam_instances``, whose 2D
    boxes are the converter's projected, clipped corners).

    Args:
        results (list[dict]): Per frame, ``pred_instances_3d`` and
            ``sample_idx`` (the dataset index), as
            :func:`evaluate_checkpoint` collects them.
        dataset (Dataset): The dataset predicted on (``test_mode=False``,
            so that each frame has its ``ann_info``; one camera a frame).

    Returns:
        tuple[list[dict], list[dict]]: Prediction and ground-truth dicts,
        in the order of ``results``.
    """
    from ..structures import project_boxes_to_image
    classes = list(dataset.metainfo['classes'])
    preds, gts = [], []
    for res in results:
        info = dataset.get_data_info(res['sample_idx'])
        cam = next(iter(info['images'].values()))
        h, w = int(cam['height']), int(cam['width'])
        ann = info['ann_info']
        gts.append(dict(
            name=np.array([classes[int(c)] for c in ann['gt_labels_3d']],
                          dtype=str),
            bbox=np.asarray(ann['gt_bboxes'], np.float64).reshape(-1, 4),
            location=ann['gt_bboxes_3d'].tensor[:, :3].double().numpy()))
        pred = res['pred_instances_3d']
        boxes = pred['bboxes_3d']
        box2d = project_boxes_to_image(boxes, cam['cam2img']).double()
        box2d = box2d.numpy().reshape(-1, 4)
        ok = np.isfinite(box2d).all(axis=1) & (box2d[:, 0] < w) & \
            (box2d[:, 1] < h) & (box2d[:, 2] > 0) & (box2d[:, 3] > 0)
        box2d[:, [0, 2]] = box2d[:, [0, 2]].clip(0, w - 1)
        box2d[:, [1, 3]] = box2d[:, [1, 3]].clip(0, h - 1)
        labels = np.asarray(pred['labels_3d']).reshape(-1)[ok]
        preds.append(dict(
            name=np.array([classes[int(c)] for c in labels], dtype=str),
            bbox=box2d[ok],
            location=boxes.tensor[torch.from_numpy(ok), :3].double().numpy(),
            score=np.asarray(pred['scores_3d'], np.float64).reshape(-1)[ok]))
    return preds, gts


def camera_view_infos(ann_file: str, cam_key: str,
                      info_classes: Sequence[str], out_file: str,
                      load_interval: int = 1) -> str:
    """A Waymo info file seen as KITTI-format data of one camera.

    Each frame's ``instances`` become its ``cam_instances[cam_key]``
    (camera-frame boxes, as the mono3d dataset reads them) and the
    metainfo gets the ``categories`` of ``info_classes``, so that a
    KITTI-format evaluator (``CentreDistanceMetric``) reads the camera's
    labels; ``load_interval`` keeps the frames the dataset keeps, so that a
    dataset index is an index here.

    Args:
        ann_file (str): mmdet3d v2 Waymo info file.
        cam_key (str): The camera (``CAM_FRONT``).
        info_classes (Sequence[str]): Class names the infos'
            ``bbox_label_3d`` index (the converter's order).
        out_file (str): The pickle to write.
        load_interval (int): The dataset's ``load_interval``.

    Returns:
        str: ``out_file``.
    """
    from mmengine.fileio import dump, load
    data = load(ann_file)
    frames = [dict(info, instances=info['cam_instances'][cam_key])
              for info in data['data_list'][::load_interval]]
    metainfo = dict(data.get('metainfo', {}),
                    categories={c: i for i, c in enumerate(info_classes)})
    dump(dict(metainfo=metainfo, data_list=frames), out_file)
    return out_file


def kitti_summary(metrics: Dict[str, float],
                  cls: str = 'Car') -> Dict[str, float]:
    """Short names of the KITTI AP40 figures of one class.

    Keys ``AP3D_{easy,mod,hard}``, ``APBEV_*``, ``AP2D_*`` (the 2D boxes of
    the projected 3D boxes, ``pred_instances_3d``; strict IoU: 0.7 for Car,
    0.5 otherwise) and ``AP3D_*_loose`` etc. (0.5 for Car, 0.25
    otherwise), percentages as mmdet3d reports them; ``AP2Dreg_*`` is the
    2D AP of the detector's own 2D boxes (``pred_instances``) where it
    predicts them (MonoDLE).
    """
    out = {}
    short = dict(easy='easy', moderate='mod', hard='hard')
    kinds = dict(**{'3D': 'AP3D', 'BEV': 'APBEV', '2D': 'AP2D'})
    for key, value in metrics.items():
        m = re.search(rf'(^|/){cls}_(3D|BEV|2D)_AP40_(easy|moderate|hard)_'
                      r'(strict|loose)$', key)
        if m is None:
            continue
        kind = kinds[m.group(2)]
        if key.startswith('pred_instances/'):
            kind = 'AP2Dreg'
        name = f'{kind}_{short[m.group(3)]}'
        if m.group(4) == 'loose':
            name += '_loose'
        out[name] = float(value)
    return out


def evaluate_checkpoint(config,
                        checkpoint: Optional[str],
                        split: Optional[str] = 'val',
                        data_root: Optional[str] = None,
                        cfg_options: Optional[dict] = None,
                        kitti: bool = True,
                        centre_distance: bool = True,
                        descriptors: bool = True,
                        match: str = 'iou2d',
                        match_thr: Optional[float] = None,
                        max_images: Optional[int] = None,
                        progress: bool = True,
                        log_file: Optional[str] = None,
                        warmup: int = 3) -> Dict:
    """Predict, time, read descriptors and evaluate on one split.

    Args:
        config (str | Config): Model config (plain detector or wrapper).
        checkpoint (str, optional): Weights; None keeps the initialisation.
        split (str, optional): Info split. Defaults to 'val'.
        data_root (str, optional): Dataset root replacing the config's.
        cfg_options (dict, optional): Merged into the config.
        kitti (bool): Evaluate the detections with the config's benchmark
            (:func:`detection_benchmark`): ``KittiMetric``, or
            ``WaymoMono3DMetric`` for a Waymo config. Defaults to True.
        centre_distance (bool): With ``kitti``, also run ddml's
            ``CentreDistanceMetric`` (BEV centre-distance AP, depth error by
            range; on Waymo on the camera's labels,
            :func:`camera_view_infos`). Defaults to True.
        descriptors (bool): Collect object descriptors. Defaults to True.
        match (str): ``'iou2d'`` or ``'bev'`` matching for the depth error.
        match_thr (float, optional): IoU (default 0.5) or BEV distance in
            metres (default 2.0).
        max_images (int, optional): Only the first images (tests).
        progress (bool): tqdm bar over the images. Defaults to True.
        log_file (str, optional): The metrics' full printout goes here
            (console gets warnings only).
        warmup (int): Images excluded from the timing. Defaults to 3.

    Returns:
        dict: ``benchmark`` (:func:`detection_benchmark`), ``metrics``
        (all KittiMetric figures, short keys of :func:`kitti_summary`
        under ``car``; for Waymo all WaymoMono3DMetric figures with its
        ``Waymo/`` prefix, also under ``waymo``), ``depth``
        (matched-detection depth error, see :func:`depth_errors`),
        ``matches`` (per frame, the :func:`match_detections` pairs),
        ``results`` (per frame, the predictions as ``KittiMetric.process``
        stores them, plus a Waymo frame's ``context_name`` and
        ``timestamp``),
        ``centre_distance`` (``CentreDistanceMetric`` figures, unprefixed
        keys), ``infer_ms`` (median and
        mean wall ms per image, median CPU ms), ``num_images``,
        ``descriptors`` (N, C), ``depths`` (N, ), ``labels`` (N, ),
        ``settings``.
    """
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    cfg = copy.deepcopy(cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    settings = descriptor_settings(cfg.model)
    if log_file is not None:  # this evaluation's log only
        os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
        open(log_file, 'w').close()
    with _QuietConsole(log_file):
        model, detector = load_model(cfg, checkpoint)
        dataset = build_split_dataset(cfg, split, data_root)
    n = len(dataset) if max_images is None else min(len(dataset), max_images)

    reader = descriptor_reader(model, cfg) if descriptors else None
    results, times, cpu_times = [], [], []
    all_desc, all_depth, all_label = [], [], []
    indices = range(n)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc='inference', unit='img', leave=False)
    with torch.no_grad():
        for idx in indices:
            batch = pseudo_collate([dataset[idx]])
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            start, cpu0 = time.perf_counter(), time.process_time()
            preds = detector.predict(inputs, samples)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu0)
            for sample in preds:
                results.append(_to_result(sample))
            if reader is not None:
                # the training route: extract_feat -> aux_feature_map ->
                # object_descriptors (a second, untimed backbone pass)
                feat, stride = reader.aux_feature_map(
                    reader.extract_feat(inputs), inputs)
                objs = reader.object_descriptors(feat, stride, samples)
                all_desc.append(objs.descriptors.cpu().numpy())
                all_depth.append(objs.depths.cpu().numpy())
                all_label.append(objs.labels.cpu().numpy())

    skip = warmup if len(times) > warmup else 0
    timed, cpu_timed = np.asarray(times[skip:]), np.asarray(cpu_times[skip:])
    out = dict(
        num_images=n, settings=settings,
        infer_ms=dict(median=float(np.median(timed) * 1e3),
                      mean=float(timed.mean() * 1e3),
                      cpu_median=float(np.median(cpu_timed) * 1e3))
        if timed.size else {},
        metrics={}, depth={})
    channels = 0
    if all_desc:
        channels = all_desc[0].shape[1]
    out['descriptors'] = np.concatenate(all_desc) if all_desc else \
        np.zeros((0, channels), np.float32)
    out['depths'] = np.concatenate(all_depth) if all_depth else np.zeros(0)
    out['labels'] = np.concatenate(all_label) if all_label else \
        np.zeros(0, np.int64)
    out['benchmark'] = benchmark = detection_benchmark(cfg)
    if kitti and results:
        if benchmark == 'waymo':
            out['metrics'] = out['waymo'] = _waymo_metric(
                cfg, dataset, results, log_file)
            pred_annos, gt_annos = camera_frame_annos(results, dataset)
        else:
            metrics, pred_annos, gt_annos = _kitti_metric(
                cfg, dataset, results, n, data_root, log_file)
            out['metrics'] = metrics
            out['car'] = kitti_summary(metrics, 'Car')
        classes = list(dataset.metainfo['classes'])
        thr = match_thr if match_thr is not None else (
            0.5 if match == 'iou2d' else 2.0)
        pairs = [
            match_detections(p, g, classes, criterion=match, threshold=thr)
            for p, g in zip(pred_annos, gt_annos)
        ]
        out['depth'] = depth_errors(pairs)
        out['depth_car'] = depth_errors(pairs, cls='Car')
        out['matches'] = pairs
        out['results'] = results
        if centre_distance:
            out['centre_distance'] = _centre_distance_metric(
                dataset, results, log_file,
                waymo=_waymo_metric_cfg(cfg) if benchmark == 'waymo'
                else None)
    return out


def _centre_distance_metric(dataset, results: List[dict],
                            log_file: Optional[str],
                            waymo: Optional[dict] = None
                            ) -> Dict[str, float]:
    """ddml's ``CentreDistanceMetric`` on the same predictions; for Waymo
    (``waymo``: the config's ``WaymoMono3DMetric`` settings) on the
    camera's labels (:func:`camera_view_infos`)."""
    import tempfile

    from mmdet3d.registry import METRICS
    with tempfile.TemporaryDirectory(prefix='ddml_cd_') as tmp:
        ann_file = dataset.ann_file
        if waymo is not None:
            ann_file = camera_view_infos(
                ann_file, waymo['cam_key'], waymo['info_classes'],
                osp.join(tmp, 'camera_infos.pkl'),
                getattr(dataset, 'load_interval', 1))
        metric = METRICS.build(
            dict(type='CentreDistanceMetric', ann_file=ann_file))
        metric.dataset_meta = dataset.metainfo
        with _QuietConsole(log_file):
            metric.process({}, results)
            return metric.compute_metrics(metric.results)


def _waymo_metric_cfg(cfg) -> dict:
    """The config's ``WaymoMono3DMetric`` settings, with the metric's own
    defaults filled in (``cam_key``, ``info_classes``)."""
    import inspect

    from ..evaluation import WaymoMono3DMetric
    evaluators = cfg.val_evaluator
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    ev_cfg = copy.deepcopy(dict(next(
        e for e in evaluators if e.get('type') == 'WaymoMono3DMetric')))
    params = inspect.signature(WaymoMono3DMetric).parameters
    for key in ('cam_key', 'info_classes'):
        ev_cfg.setdefault(key, params[key].default)
    return ev_cfg


def _waymo_metric(cfg, dataset, results: List[dict],
                  log_file: Optional[str]) -> Dict[str, float]:
    """The config's ``WaymoMono3DMetric`` on the dataset's info file: its
    figures with the metric's prefix (``Waymo/Vehicle/LEVEL_2/LET-AP``, as
    ``tools/test.py`` reports them)."""
    from mmdet3d.registry import METRICS
    ev_cfg = _waymo_metric_cfg(cfg)
    ev_cfg['ann_file'] = dataset.ann_file  # already joined with data_root
    metric = METRICS.build(ev_cfg)
    metric.dataset_meta = dataset.metainfo
    with _QuietConsole(log_file):
        metric.process({}, results)
        figures = metric.compute_metrics(metric.results)
    return {f'{metric.prefix}/{k}': float(v) for k, v in figures.items()}


def _to_result(sample) -> dict:
    """What ``KittiMetric.process`` stores for one output sample, plus the
    Waymo frame key (``context_name``, ``timestamp``) where the sample has
    it (``WaymoMono3DMetric`` then reads the calibration from the info)."""
    pred_3d = sample.pred_instances_3d.to_dict()
    pred_2d = sample.pred_instances.to_dict() \
        if 'pred_instances' in sample else {}
    for inst in (pred_3d, pred_2d):
        for key, value in inst.items():
            if hasattr(value, 'to'):
                inst[key] = value.to('cpu')
    out = dict(pred_instances_3d=pred_3d, pred_instances=pred_2d,
               sample_idx=sample.sample_idx)
    for key in ('context_name', 'timestamp'):
        if key in sample.metainfo:
            out[key] = sample.metainfo[key]
    return out


class _QuietConsole:
    """Route mmengine's current logger to a file; console warnings only."""

    def __init__(self, log_file: Optional[str]):
        self.log_file = log_file

    def __enter__(self):
        from mmengine.logging import MMLogger
        name = f'ddml_eval_{time.time_ns()}'
        # append: the metrics of one evaluation log one after the other
        # (evaluate_checkpoint empties the file first)
        self.logger = MMLogger.get_instance(
            name, log_file=self.log_file, log_level='INFO', file_mode='a')
        self.levels = []
        for h in self.logger.handlers:
            if isinstance(h, logging.StreamHandler) and \
                    not isinstance(h, logging.FileHandler):
                self.levels.append((h, h.level))
                h.setLevel(logging.WARNING)
        return self.logger

    def __exit__(self, *exc):
        for h, level in self.levels:
            h.setLevel(level)
        return False


def _kitti_metric(cfg, dataset, results: List[dict], n: int,
                  data_root: Optional[str], log_file: Optional[str]):
    """KittiMetric's compute_metrics, keeping the formatted predictions."""
    from mmdet3d.registry import METRICS
    ev_cfg = copy.deepcopy(cfg.val_evaluator)
    if isinstance(ev_cfg, (list, tuple)):
        ev_cfg = ev_cfg[0]
    ev_cfg['ann_file'] = dataset.ann_file  # already joined with data_root
    if ev_cfg.get('type') != 'KittiMetric':
        ev_cfg = dict(type='KittiMetric', ann_file=ev_cfg['ann_file'])
    metric = METRICS.build(ev_cfg)
    metric.dataset_meta = dataset.metainfo
    import contextlib
    import io

    import mmengine
    sink = io.StringIO()
    track = mmengine.track_iter_progress  # its bar ignores redirect_stdout
    mmengine.track_iter_progress = lambda tasks, *a, **k: tasks
    try:
        with _QuietConsole(log_file) as logger, \
                contextlib.redirect_stdout(sink):
            metrics, result_dict, gt_annos = _run_kitti(
                metric, results, n, logger)
    finally:
        mmengine.track_iter_progress = track
    if log_file is not None:
        with open(log_file, 'a') as f:
            f.write(sink.getvalue())
    return metrics, result_dict.get('pred_instances_3d', []), gt_annos


def _run_kitti(metric, results, n, logger):
    from mmengine.fileio import load
    metric.classes = metric.dataset_meta['classes']
    infos = load(metric.ann_file)
    if n < len(infos['data_list']):
        infos['data_list'] = infos['data_list'][:n]
    metric.data_infos = metric.convert_annos_to_kitti_annos(infos)
    result_dict, tmp_dir = metric.format_results(
        results, classes=metric.classes)
    gt_annos = [metric.data_infos[r['sample_idx']]['kitti_annos']
                for r in results]
    metrics = {}
    for m in metric.metrics:
        metrics.update(metric.kitti_evaluate(
            result_dict, gt_annos, metric=m, logger=logger,
            classes=metric.classes))
    if tmp_dir is not None:
        tmp_dir.cleanup()
    return metrics, result_dict, gt_annos


def evaluate_run(name: str,
                 config: str,
                 checkpoint: Optional[str],
                 out_dir: str,
                 data_root: Optional[str] = None,
                 split: str = 'val',
                 cfg_options: Optional[dict] = None,
                 figures: bool = True,
                 progress: bool = True) -> Dict:
    """:func:`evaluate_checkpoint` plus the descriptor statistics/figures.

    Returns:
        dict: A flat row: Car AP40 figures (:func:`kitti_summary` keys;
        for Waymo every ``WaymoMono3DMetric`` figure under its
        ``Waymo/...`` name instead),
        ``depth_mae`` / ``depth_matched`` (all classes, 2D IoU >= 0.5),
        ``depth_mae_car``, ``infer_ms`` (median wall), ``infer_cpu_ms``
        (median CPU time of the process, all threads), ``spearman``,
        ``frac_inside``, ``frac_above``, ``frac_below``, ``num_objects``,
        ``cd_<key>`` for the :data:`CENTRE_DISTANCE_KEYS` of
        ``CentreDistanceMetric``, ``figures`` (paths), and, for the
        caller's figures (not serialisable, pop them before saving),
        ``_matches`` (all matched pairs) and ``_results`` (predictions).
    """
    from mmengine.config import Config

    from .descriptor_analysis import descriptor_report, pair_statistics
    os.makedirs(out_dir, exist_ok=True)
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    res = evaluate_checkpoint(
        cfg, checkpoint, split=split, data_root=data_root,
        cfg_options=cfg_options, progress=progress,
        log_file=osp.join(out_dir,
                          f'{name}_{detection_benchmark(cfg)}_eval.log'))
    s = res['settings']
    if figures:
        stats = descriptor_report(res['descriptors'], res['depths'], out_dir,
                                  name, s['K'], s['B'], s['eps'], title=name)
    else:
        stats = pair_statistics(res['descriptors'], res['depths'], s['K'],
                                s['B'], s['eps'])
    row = dict(name=name)
    row.update(res.get('car', {}))
    row.update(res.get('waymo', {}))
    row.update(
        depth_mae=res['depth'].get('mae', float('nan')),
        depth_matched=res['depth'].get('num_matched', 0),
        depth_mae_car=res.get('depth_car', {}).get('mae', float('nan')),
        infer_ms=res['infer_ms'].get('median', float('nan')),
        infer_cpu_ms=res['infer_ms'].get('cpu_median', float('nan')),
        num_images=res['num_images'])
    for key in ('spearman', 'frac_inside', 'frac_above', 'frac_below',
                'num_objects', 'num_pairs_eps', 'mean_desc_dist'):
        row[key] = stats.get(key)
    cd = res.get('centre_distance', {})
    for key in CENTRE_DISTANCE_KEYS:
        row[f'cd_{key}'] = cd.get(key, float('nan'))
    row['figures'] = list(stats.get('figures', []))
    row['_matches'] = [m for frame in res.get('matches', []) for m in frame]
    row['_results'] = res.get('results', [])
    return row
