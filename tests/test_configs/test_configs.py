"""Every config in configs/ builds, trains and evaluates end to end.

Each KITTI config runs two real training iterations through its own mmdet3d
pipeline and one evaluation pass with ``KittiMetric`` (3D/BEV/2D AP on the
CPU), on the real KITTI frames of ``../shared/data`` and on synthetic
frames; each Waymo config runs two training iterations on the real Waymo
frames. Inputs are shrunk (the resize steps of the pipelines) and
pretrained weights are not loaded, so that this runs on a 2-core CPU.
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
SMALL = (320, 96)  # (w, h) for KITTI-shaped inputs
SMALL_WAYMO = (320, 224)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO / 'configs'))


def test_configs_found():
    assert len(KITTI) >= 11 and len(WAYMO) >= 4, [_rel(c) for c in CONFIGS]
    assert set(KITTI) | set(WAYMO) == set(CONFIGS)


def _detector_cfg(cfg: Config):
    return cfg.model.get('detector', cfg.model)


def _shrink_pipeline(pipeline, scale):
    for t in pipeline:
        kind = t['type']
        if kind == 'AffineResize':
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
    cfg.test_evaluator.ann_file = str(root / f'{dataset}_infos_val.pkl')
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
        assert detector in ('SMOKEMono3D', 'FCOSMono3D')
    want = 'WaymoMono3DMetric' if 'waymo' in config.name else 'KittiMetric'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == want
        assert type(METRICS.build(evaluator)).__name__ == want
