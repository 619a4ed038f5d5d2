"""Every config in configs/ builds, trains and evaluates end to end.

Each KITTI config runs two real training iterations through its own mmdet3d
pipeline and one evaluation pass with ``KittiMetric`` (3D/BEV/2D AP on the
CPU), on the real KITTI frames of ``../shared/data`` and on synthetic
frames; each Waymo config runs two training iterations on the real Waymo
frames. Inputs are shrunk (the resize steps of the pipelines) and
pretrained weights are not loaded, so that this runs on a 2-core CPU.
The ``ddml-release_*`` variants build the quasi-isometric loss and the
depth-map head with the settings of the authors' release, and every DDML
config says in its header comment which form of the loss it trains.
"""
import math
from pathlib import Path

import pytest
from mmengine.config import Config

import ddml  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(c for c in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in c.parts)
KITTI = [c for c in CONFIGS if 'kitti-mono3d' in c.name]
WAYMO = [c for c in CONFIGS if 'waymo' in c.name]
DDML = [c for c in CONFIGS if c.name.startswith('ddml_')]
RELEASE = [c for c in CONFIGS if c.name.startswith('ddml-release_')]
SMALL = (320, 96)  # (w, h) for KITTI-shaped inputs
SMALL_WAYMO = (320, 224)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO / 'configs'))


def test_configs_found():
    assert len(KITTI) >= 11 and len(WAYMO) >= 4, [_rel(c) for c in CONFIGS]
    assert set(KITTI) | set(WAYMO) == set(CONFIGS)


RELEASED_QI = dict(mode='official', temperature=10.0, detach_target=True,
                   loss_weight=0.5)


# The release's sample rules (options of DepthDiscriminativeDetector);
# test_release_config_builds_released_losses checks their values.
SAMPLE_RULES = ('skip_aux_on_affine_aug', 'min_difficulty')
# What min_difficulty needs in the training pipeline (ddml.datasets.transforms)
DIFFICULTY_TRANSFORMS = {
    'AffineResizeKeepInstanceKeys': 'AffineResize',
    'Pack3DDetInputsWithDifficulty': 'Pack3DDetInputs'
}


def _without_difficulty(pipeline):
    """A training pipeline with ddml's difficulty transforms turned back
    into mmdet3d's (LoadObjectDifficulty removed), without the keys that
    are defaults either way (a ``_scope_`` of mmdet3d, ``backend_args``
    None)."""
    out = []
    for t in pipeline:
        t = {k: v for k, v in t.items()
             if (k, v) not in (('_scope_', 'mmdet3d'), ('backend_args', None))}
        if t['type'] == 'LoadObjectDifficulty':
            continue
        if t['type'] in DIFFICULTY_TRANSFORMS:
            t['type'] = DIFFICULTY_TRANSFORMS[t['type']]
            t.pop('instance_keys', None)
            if 'keys' in t:
                t['keys'] = [k for k in t['keys'] if k != 'gt_difficulty']
        out.append(t)
    return out


def test_every_kitti_ddml_config_has_a_release_variant():
    """Each KITTI ``ddml_*`` config has a ``ddml-release_*`` sibling that
    differs from it only in the settings of the QI loss, the depth-map
    head's weight and the release's sample rules (with the transforms that
    carry each object's difficulty for ``min_difficulty``)."""
    kitti_ddml = [c for c in DDML if c in KITTI]
    assert len(kitti_ddml) >= 5 and len(RELEASE) >= len(kitti_ddml)
    for config in kitti_ddml:
        release = config.with_name(
            config.name.replace('ddml_', 'ddml-release_', 1))
        assert release in RELEASE, f'{_rel(config)} has no {release.name}'
        ours = Config.fromfile(str(config)).to_dict()
        ours['model']['qi_loss'].update(RELEASED_QI)
        ours['model']['depth_map_head']['loss_weight'] = 1.0
        theirs = Config.fromfile(str(release)).to_dict()
        # the release's settings as configs/_base_/ddml-release.py names them
        for key in [k for k in theirs if k.startswith('ddml_release_')]:
            theirs.pop(key)
        for key in SAMPLE_RULES:
            assert key not in ours['model'], f'{_rel(config)} sets {key}'
            theirs['model'].pop(key, None)
        for cfg in (ours, theirs):
            cfg['train_pipeline'] = _without_difficulty(cfg['train_pipeline'])
            dataset = cfg['train_dataloader']['dataset']
            dataset['pipeline'] = _without_difficulty(dataset['pipeline'])
        assert theirs == ours, (
            f'{_rel(release)} differs from {config.name} in more than the '
            'QI loss settings, the depth-map head weight and the sample '
            'rules')


@pytest.mark.parametrize('config', RELEASE, ids=_rel)
def test_release_config_builds_released_losses(config):
    """``ddml-release_*``: the QI loss in its released form (``official``,
    temperature 10, detached target, weight 0.5), the depth-map head at
    weight 1 and the release's rule of skipping randomly shifted/scaled
    images (wherever the training pipeline writes the ``affine_aug`` mark
    that rule reads: ``AffineResize``), on the wrapper that is actually
    built; and ``min_difficulty='hard'`` with a training pipeline that
    loads, keeps aligned and packs each object's difficulty."""
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(str(config))
    _detector_cfg(cfg).backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'DepthDiscriminativeDetector'
    qi = model.qi_loss
    assert type(qi).__name__ == 'QuasiIsometricLoss'
    assert {k: getattr(qi, k) for k in RELEASED_QI} == RELEASED_QI
    assert qi.detach_target is True
    assert model.metric_loss is None and model.dense_metric_loss is None
    assert type(model.depth_map_head).__name__ == 'ObjectDepthMapHead'
    assert model.depth_map_head.loss_weight == 1.0
    pipeline = [t['type'] for t in _train_dataset(cfg).pipeline]
    marks = any(t.startswith('AffineResize') for t in pipeline)
    assert model.skip_aux_on_affine_aug is marks, (
        f'{_rel(config)}: the training pipeline {pipeline} '
        f'{"writes" if marks else "does not write"} the affine_aug mark, '
        f'so skip_aux_on_affine_aug should be {marks}')
    assert model.min_difficulty == 'hard'
    # plain AffineResize would drop objects without their difficulty
    assert 'AffineResize' not in pipeline, pipeline
    load = pipeline.index('LoadObjectDifficulty')
    assert pipeline[load - 1] == 'LoadAnnotations3D', pipeline
    pack = _train_dataset(cfg).pipeline[-1]
    assert pack['type'] == 'Pack3DDetInputsWithDifficulty'
    assert 'gt_difficulty' in pack['keys']


@pytest.mark.parametrize('config', DDML + RELEASE, ids=_rel)
def test_ddml_config_names_its_qi_loss_form(config):
    """The header comment of every DDML config names the form of the
    quasi-isometric loss that the config trains."""
    cfg = Config.fromfile(str(config))
    mode = cfg.model.qi_loss.get('mode', 'hinge')
    comments = [line for line in config.read_text().splitlines()
                if line.lstrip().startswith('#')]
    assert any(mode in line for line in comments), (
        f'{_rel(config)} trains the {mode!r} form of the QI loss; say so '
        'in its header comment (and how it differs from the release)')


def _detector_cfg(cfg: Config):
    return cfg.model.get('detector', cfg.model)


def _train_dataset(cfg: Config):
    """The innermost training dataset config (under dataset wrappers)."""
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def _evaluators(evaluator):
    """The metric configs of an evaluator field (one dict or a list)."""
    return list(evaluator) if isinstance(evaluator, (list, tuple)) \
        else [evaluator]


def _shrink_pipeline(pipeline, scale):
    for t in pipeline:
        kind = t['type']
        if kind in ('AffineResize', 'AffineResizeKeepInstanceKeys',
                    'AffineResizeKeepTruncated'):
            t['img_scale'] = scale
        elif kind in ('Resize', 'mmdet.Resize', 'RandomResize3D'):
            t.pop('scale_factor', None)
            t.pop('ratio_range', None)
            t['scale'] = scale
            t['keep_ratio'] = True
            if kind == 'RandomResize3D':
                t['type'] = 'Resize3D'
    return pipeline


def _loader(loader, root, ann, scale):
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.dataset.data_root = str(root)
    loader.dataset.ann_file = ann
    loader.dataset.pop('load_interval', None)
    _shrink_pipeline(loader.dataset.pipeline, scale)
    return loader


def _small_run_cfg(path, root, work_dir, scale, dataset='kitti'):
    """The config of ``path`` for 2 training iterations on ``root``."""
    cfg = Config.fromfile(str(path))
    det = _detector_cfg(cfg)
    det.backbone.init_cfg = None  # no pretrained download
    _loader(cfg.train_dataloader, root, f'{dataset}_infos_train.pkl', scale)
    cfg.train_dataloader.batch_size = 2
    _loader(cfg.test_dataloader, root, f'{dataset}_infos_val.pkl', scale)
    for metric in _evaluators(cfg.test_evaluator):
        metric.ann_file = str(root / f'{dataset}_infos_val.pkl')
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.load_from = None
    cfg.resume = False
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


def _train(cfg):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    assert hub.get_info('iter') in (1, 2) and runner.iter == 2
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), loss
    if cfg.model.type == 'DepthDiscriminativeDetector':
        aux = [k for k in hub.log_scalars
               if k in ('train/loss_qi', 'train/loss_obj_depth',
                        'train/loss_metric', 'train/loss_dense_metric')]
        assert aux, sorted(hub.log_scalars)
        for key in aux:
            assert math.isfinite(hub.get_scalar(key).current()), key
    return runner


def _check_kitti_metrics(metrics, classes):
    prefix = 'Kitti metric/pred_instances_3d/KITTI/'
    for cls in classes:
        for kind in ('3D', 'BEV', '2D'):
            key = f'{prefix}{cls}_{kind}_AP40_moderate_strict'
            assert key in metrics, sorted(metrics)[:10]
            assert 0.0 <= metrics[key] <= 100.0


@pytest.mark.slow
@pytest.mark.parametrize('config', KITTI, ids=_rel)
@pytest.mark.parametrize('data', ['real', 'synthetic'])
def test_kitti_config_trains_and_evaluates(config, data, request, tmp_path):
    root = request.getfixturevalue(
        'real_kitti_root' if data == 'real' else 'synthetic_kitti_root')
    cfg = _small_run_cfg(config, root, tmp_path, SMALL)
    runner = _train(cfg)
    metrics = runner.test()
    classes = cfg.train_dataloader.dataset.metainfo['classes']
    _check_kitti_metrics(metrics, classes)


@pytest.mark.slow
@pytest.mark.parametrize('config', WAYMO, ids=_rel)
def test_waymo_config_trains(config, real_waymo_root, tmp_path):
    cfg = _small_run_cfg(config, real_waymo_root, tmp_path, SMALL_WAYMO,
                         dataset='waymo')
    _train(cfg)
    assert cfg.test_evaluator.type == 'WaymoMono3DMetric'


@pytest.mark.parametrize('config', CONFIGS, ids=_rel)
def test_config_builds(config):
    from mmdet3d.registry import METRICS, MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(str(config))
    assert cfg.custom_imports['imports'] == ['ddml']
    _detector_cfg(cfg).backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    if cfg.model.type == 'DepthDiscriminativeDetector':
        detector = type(model.detector).__name__
        assert detector in ('SMOKEMono3D', 'FCOSMono3D', 'MonoDLE',
                            'MonoFlex')
    want = 'WaymoMono3DMetric' if 'waymo' in config.name else \
        'KittiMono3DMetric' if config.parent.name == 'monodle' else \
        'KittiMetric'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        metrics = _evaluators(evaluator)
        assert metrics[0].type == want
        for metric in metrics:
            assert type(METRICS.build(metric)).__name__ == metric.type
