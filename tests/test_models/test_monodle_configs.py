"""Every MonoDLE config builds, trains and evaluates end to end.

Each config of ``configs/monodle/`` runs two real training iterations
through its own mmdet3d pipeline (random flip, random shift/scale,
AffineResize) and one evaluation pass with ``KittiMetric``, on the real
KITTI frames of ``../shared/data`` and on synthetic frames. Inputs are
shrunk and pretrained weights are not loaded, so that this runs on a
2-core CPU.
"""
import math
from pathlib import Path

import pytest
from mmengine.config import Config

import ddml  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / 'configs' / 'monodle').glob('*.py'))
SMALL = (320, 96)  # (w, h), a multiple of 32
TERMS = ('heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d', 'size_3d',
         'heading')


def _name(path: Path) -> str:
    return path.name


def _detector_cfg(cfg: Config):
    return cfg.model.get('detector', cfg.model)


def test_configs_found():
    names = {c.name for c in CONFIGS}
    for prefix in ('monodle_', 'ddml_monodle_', 'ddml-release_monodle_'):
        for suffix in ('kitti-mono3d.py', 'kitti-mono3d-car.py'):
            assert any(
                n.startswith(prefix) and n.endswith(suffix) for n in names), \
                (prefix, suffix, sorted(names))


@pytest.mark.parametrize('config', CONFIGS, ids=_name)
def test_config_builds(config):
    from mmdet3d.registry import METRICS, MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(str(config))
    assert cfg.custom_imports['imports'] == ['ddml']
    det = _detector_cfg(cfg)
    det.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    plain = model.detector if cfg.model.type == \
        'DepthDiscriminativeDetector' else model
    assert type(plain).__name__ == 'MonoDLE'
    classes = cfg.train_dataloader.dataset.metainfo['classes']
    assert plain.bbox_head.num_classes == len(classes)
    assert plain.bbox_head.bbox_coder.num_classes == len(classes)
    assert plain.bbox_head.max_depth == 65.0
    if config.name.startswith('ddml-release_'):
        qi = model.qi_loss
        assert (qi.mode, qi.loss_weight, qi.temperature, qi.detach_target,
                qi.K, qi.B, qi.eps) == ('official', 0.5, 10.0, True, 1.5,
                                        0.5, 10.0)
        assert model.depth_map_head.loss_weight == 1.0
    elif config.name.startswith('ddml_'):
        assert model.qi_loss.mode == 'hinge'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        # KittiMetric writing the regressed 2D box beside each 3D result,
        # as the release's output files do
        metric = METRICS.build(evaluator)
        assert type(metric).__name__ == 'KittiMono3DMetric'
        assert metric.bbox2d_source == 'regressed'


def test_schedule_is_the_releases():
    """lr 1e-5 -> 1.25e-3 by a 5-epoch cosine, x0.1 at 95 and 125 (where
    the release's scheduler drops: tests/test_configs/
    test_monodle_release_schedule.py steps the release's own)."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'monodle' /
            'monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'))
    module = torch.nn.Conv2d(2, 2, 1)
    wrapper = build_optim_wrapper(module, cfg.optim_wrapper)
    decays = {g['weight_decay'] for g in wrapper.param_groups}
    assert decays == {0.0, 1e-5}
    schedulers = [
        PARAM_SCHEDULERS.build(
            dict(s, optimizer=wrapper.optimizer))
        for s in cfg.param_scheduler
    ]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(wrapper.param_groups[0]['lr'])
        for s in schedulers:
            s.step()
    base, start = 1.25e-3, 1e-5
    for e in range(5):
        want = start + (base - start) * (1 - math.cos(math.pi * e / 5)) / 2
        assert lrs[e] == pytest.approx(want, rel=1e-6), e
    assert lrs[5] == pytest.approx(base, rel=1e-6)
    assert lrs[94] == pytest.approx(base, rel=1e-6)
    assert lrs[95] == pytest.approx(base * 0.1, rel=1e-6)
    assert lrs[124] == pytest.approx(base * 0.1, rel=1e-6)
    assert lrs[125] == pytest.approx(base * 0.01, rel=1e-6)


def _shrink(pipeline):
    for t in pipeline:
        if t['type'].startswith('AffineResize'):
            t['img_scale'] = SMALL
    return pipeline


def _small_run_cfg(path, root, work_dir):
    cfg = Config.fromfile(str(path))
    _detector_cfg(cfg).backbone.init_cfg = None  # no download
    for loader, ann in ((cfg.train_dataloader, 'kitti_infos_train.pkl'),
                        (cfg.test_dataloader, 'kitti_infos_val.pkl')):
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = str(root)
        loader.dataset.ann_file = ann
        _shrink(loader.dataset.pipeline)
    cfg.train_dataloader.batch_size = 2
    cfg.test_evaluator.ann_file = str(root / 'kitti_infos_val.pkl')
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


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS, ids=_name)
@pytest.mark.parametrize('data', ['real', 'synthetic'])
def test_config_trains_and_evaluates(config, data, request, tmp_path):
    from mmengine.runner import Runner
    root = request.getfixturevalue(
        'real_kitti_root' if data == 'real' else 'synthetic_kitti_root')
    cfg = _small_run_cfg(config, root, tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    hub = runner.message_hub
    for term in TERMS:
        value = hub.get_scalar(f'train/loss_{term}').current()
        assert math.isfinite(value), (term, value)
    if cfg.model.type == 'DepthDiscriminativeDetector':
        for key in ('train/loss_qi', 'train/loss_obj_depth'):
            assert math.isfinite(hub.get_scalar(key).current()), key
    metrics = runner.test()
    classes = cfg.train_dataloader.dataset.metainfo['classes']
    for cls in classes:
        for key in (f'pred_instances_3d/KITTI/{cls}_3D_AP40_moderate_strict',
                    f'pred_instances_3d/KITTI/{cls}_BEV_AP40_moderate_strict',
                    f'pred_instances/KITTI/{cls}_2D_AP40_moderate_strict'):
            value = metrics[f'Kitti metric/{key}']
            assert 0.0 <= value <= 100.0, (key, value)
