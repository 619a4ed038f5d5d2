"""The demo's and the efficacy benchmark's Waymo plumbing (issue 22, items
2 and 3), without training: the dataset facts and the demo configs agree,
the Waymo split datasets, labels and metric keys the demo reads, the tables
and columns, protocols with ``"dataset": "waymo"``, and the tools'
arguments."""
import copy
import importlib.util
import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from ddml.analysis.runs import DEMO_DATASETS, DEMO_SCALE, demo_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
WAYMO_DEMO = sorted((REPO_ROOT / 'configs' / 'demo').glob('*waymo*.py'))


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def waymo_root(tmp_path_factory) -> Path:
    """The Waymo demo's scenes: 2 train, 3 val, 2 held-out frames at
    192x128 (well under a second)."""
    from ddml.data_tools.synthetic_waymo import make_waymo_dataset
    root = tmp_path_factory.mktemp('demo_waymo')
    make_waymo_dataset(root, 2, 3, seed=5, scale=0.1, workers=1,
                       progress=False, num_test=2,
                       layout=DEMO_DATASETS['waymo'].layout())
    return root


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def test_demo_datasets():
    from ddml.data_tools.synthetic_kitti import DEMO_LAYOUT
    kitti, waymo = DEMO_DATASETS['kitti'], DEMO_DATASETS['waymo']
    # KITTI: what the demo has always rendered
    assert kitti.scale == DEMO_SCALE and kitti.layout() == DEMO_LAYOUT
    assert kitti.image_dir('test') == 'testing/image_2'
    assert kitti.info_file('r', 'val') == 'r/kitti_infos_val.pkl'
    # Waymo: the KITTI demo's scenes out to 50 m, the converter's folders
    assert waymo.layout().depth_range == (4.0, 50.0)
    assert waymo.layout().class_probs == (('Car', 1.0), )
    assert waymo.image_dir('val') == 'training/image_0'
    assert waymo.image_dir('test') == 'testing/image_0'
    assert waymo.info_file('r', 'test') == 'r/waymo_infos_test.pkl'
    with pytest.raises(ValueError, match=r"--dataset.*\['kitti', 'waymo'\]"):
        demo_dataset('nuscenes')


@pytest.mark.parametrize('config', WAYMO_DEMO, ids=lambda p: p.name)
def test_waymo_demo_configs(config):
    """The rendered frames are the configs' input (no resizing, divisible
    by 32), the name says the schedule, the data is the demo's."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from ddml.data_tools.synthetic_waymo import waymo_camera
    init_default_scope('mmdet3d')
    assert len(WAYMO_DEMO) == 2
    cfg = Config.fromfile(str(config))
    cam = waymo_camera(DEMO_DATASETS['waymo'].scale)
    assert cfg.img_scale == (cam.width, cam.height) == (288, 192)
    assert cam.width % 32 == 0 and cam.height % 32 == 0
    iters = int(re.search(r'_1xb8-(\d+)iter_', config.name).group(1))
    assert cfg.train_cfg.max_iters == iters == cfg.param_scheduler[1].end
    assert cfg.train_dataloader.batch_size == 8
    assert _tool('run_demo').DEFAULT_ITERS == iters
    root = DEMO_DATASETS['waymo'].default_root + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        assert ds.type == 'WaymoDataset' and ds.data_root == root
        assert ds.load_type == 'fov_image_based' and ds.load_interval == 1
        assert ds.default_cam_key == 'CAM_FRONT'
        assert ds.data_prefix.CAM_FRONT == 'training/image_0'
        assert 'img' not in ds.data_prefix
    for ev in (cfg.val_evaluator, cfg.test_evaluator):
        assert ev.type == 'WaymoMono3DMetric'
        assert ev.ann_file == root + 'waymo_infos_val.pkl'
        # mmengine's Runner.build_evaluator reads a dict with 'metrics' as
        # an Evaluator's config (then: not in the evaluator registry)
        assert 'metrics' not in ev
        evaluator = Runner.build_evaluator(None, copy.deepcopy(ev))
        assert type(evaluator.metrics[0]).__name__ == 'WaymoMono3DMetric'
    pack = cfg.test_pipeline[-1]
    assert {'context_name', 'timestamp'} <= set(pack.meta_keys)
    assert 'img_shape' not in pack.meta_keys  # the input's, not cam2img's
    head = (cfg.model.detector if 'detector' in cfg.model
            else cfg.model).bbox_head
    assert head.bbox_coder.mean_sizes == ((4.73, 1.77, 2.08), )
    if cfg.model.type == 'DepthDiscriminativeDetector':
        assert (cfg.model.min_depth, cfg.model.max_depth) == \
            (head.min_depth, head.max_depth) == (2.0, 75.0)


def test_ensure_dataset_waymo(tmp_path, monkeypatch):
    import ddml.data_tools.synthetic_waymo as sw
    from ddml.analysis import runs
    calls = []

    def fake(root, num_train, num_val, seed, scale, progress, layout,
             num_test):
        calls.append((num_train, num_val, seed, scale, num_test,
                      layout.depth_range))
        for split in ('train', 'val', 'trainval') + \
                (('test', ) if num_test else ()):
            with open(Path(root) / f'waymo_infos_{split}.pkl', 'wb') as f:
                pickle.dump(dict(metainfo={}, data_list=[]), f)
    monkeypatch.setattr(sw, 'make_waymo_dataset', fake)
    root = tmp_path / 'w'
    root.mkdir()
    say = []
    assert runs.ensure_dataset(str(root), 4, 2, 0, log=say.append,
                               num_test=1, dataset='waymo')
    assert not runs.ensure_dataset(str(root), 4, 2, 0, log=say.append,
                                   num_test=1, dataset='waymo')
    assert calls == [(4, 2, 0, 0.15, 1, (4.0, 50.0))]
    manifest = runs.read_manifest(str(root))
    assert manifest['format'] == 'waymo' and manifest['scale'] == 0.15
    with pytest.raises(ValueError, match='holds synthetic waymo data.*'
                       r'--data-root, default data/demo_kitti'):
        runs.ensure_dataset(str(root), 4, 2, 0, log=say.append)


def test_metric_keys_of_the_tables(waymo_root):
    """Every Waymo key of the demo table and of the benchmark's columns is
    a figure WaymoMono3DMetric reports; the ground truth scores 1."""
    from mmdet3d.structures import CameraInstance3DBoxes

    from ddml.analysis.demo import WAYMO_DEMO_TABLE_ROWS
    from ddml.analysis.efficacy import WAYMO_COLUMNS
    from ddml.evaluation import WaymoMono3DMetric
    metric = WaymoMono3DMetric(ann_file=str(waymo_root /
                                            'waymo_infos_val.pkl'))
    metric.dataset_meta = dict(classes=['Car'])
    samples = []
    for info in _load(waymo_root / 'waymo_infos_val.pkl')['data_list']:
        cams = info['cam_instances']['CAM_FRONT']
        boxes = torch.tensor([c['bbox_3d'] for c in cams]).reshape(-1, 7)
        samples.append(dict(
            context_name=info['context_name'], timestamp=info['timestamp'],
            pred_instances_3d=dict(
                bboxes_3d=CameraInstance3DBoxes(boxes),
                scores_3d=torch.linspace(1, 0.5, len(cams)),
                labels_3d=torch.zeros(len(cams), dtype=torch.long))))
    metric.process({}, samples)
    out = {f'Waymo/{k}': v for k, v in
           metric.compute_metrics(metric.results).items()}
    keys = [k for _, ks, _ in WAYMO_DEMO_TABLE_ROWS for k in ks
            if k.startswith('Waymo/')] + \
        [c[1] for c in WAYMO_COLUMNS if c[1].startswith('Waymo/')]
    assert len(keys) >= 16
    missing = [k for k in keys if k not in out]
    assert not missing, missing
    assert out['Waymo/Vehicle/LEVEL_2/LET-AP'] == pytest.approx(1.0)
    assert out['Waymo/Vehicle/LEVEL_1/AP'] == pytest.approx(1.0)


def test_split_dataset_and_camera_labels(waymo_root, tmp_path):
    """The demo's evaluation reads Waymo's held-out split from testing/,
    the depth matching and the centre-distance metric read the camera's
    labels: ground truth as predictions matches itself exactly."""
    from mmengine.config import Config

    from ddml.analysis.demo_report import depth_errors, match_detections
    from ddml.analysis.model_eval import (_centre_distance_metric,
                                          _waymo_metric_cfg,
                                          build_split_dataset,
                                          camera_frame_annos,
                                          camera_view_infos,
                                          detection_benchmark)
    cfg = Config.fromfile(str(WAYMO_DEMO[-1]))
    assert detection_benchmark(cfg) == 'waymo'
    ds = build_split_dataset(cfg, 'test', str(waymo_root))
    assert ds.data_prefix['CAM_FRONT'].endswith('testing/image_0')
    assert len(ds) == 2 and ds[0]['inputs']['img'].shape[1:] == (192, 288)
    ds = build_split_dataset(cfg, 'val', str(waymo_root))
    infos = _load(waymo_root / 'waymo_infos_val.pkl')['data_list']
    results = []
    for i, info in enumerate(infos):
        ann = ds.get_data_info(i)['ann_info']
        n = len(ann['gt_labels_3d'])
        assert n == len(info['cam_instances']['CAM_FRONT']) > 0
        results.append(dict(
            sample_idx=i, context_name=info['context_name'],
            timestamp=info['timestamp'],
            pred_instances_3d=dict(bboxes_3d=ann['gt_bboxes_3d'],
                                   scores_3d=torch.ones(n),
                                   labels_3d=torch.as_tensor(
                                       ann['gt_labels_3d']))))
    preds, gts = camera_frame_annos(results, ds)
    pairs = [match_detections(p, g, ['Car']) for p, g in zip(preds, gts)]
    depth = depth_errors(pairs)
    assert depth['num_matched'] == sum(len(g['name']) for g in gts)
    assert depth['mae'] == pytest.approx(0.0, abs=1e-5)
    # the camera view of the infos: cam_instances as instances, categories
    view = camera_view_infos(ds.ann_file, 'CAM_FRONT',
                             ('Car', 'Pedestrian', 'Cyclist'),
                             str(tmp_path / 'view.pkl'))
    data = _load(view)
    assert data['metainfo']['categories'] == dict(Car=0, Pedestrian=1,
                                                  Cyclist=2)
    assert data['data_list'][1]['instances'] == \
        infos[1]['cam_instances']['CAM_FRONT']
    waymo = _waymo_metric_cfg(cfg)
    assert waymo['cam_key'] == 'CAM_FRONT'
    cd = _centre_distance_metric(ds, results, str(tmp_path / 'cd.log'),
                                 waymo=waymo)
    assert cd['Car_mAP'] == pytest.approx(1.0)
    assert cd['depth_abs_err_all'] == pytest.approx(0.0, abs=1e-5)


def test_frame_from_info_waymo(waymo_root):
    from ddml.analysis.detection_figures import frame_from_info
    info = _load(waymo_root / 'waymo_infos_test.pkl')['data_list'][1]
    frame = frame_from_info(info, str(waymo_root), 'test', 'waymo')
    assert frame['image'].shape == (128, 192, 3)
    assert frame['cam2img'].shape == (4, 4)
    assert len(frame['gt']) == len(info['cam_instances']['CAM_FRONT'])
    assert frame['title'] == f'{info["context_name"]}/{info["timestamp"]}'


def _waymo_row(name, let_ap):
    return {'name': name, 'Waymo/Vehicle/LEVEL_2/LET-AP': let_ap,
            'Waymo/Vehicle/LEVEL_2/LET-APL': let_ap / 2,
            'Waymo/Vehicle/LEVEL_2/LET-APH': let_ap / 3,
            'Waymo/Vehicle/LEVEL_2/Range_30-50m/LET-AP': 0.1,
            'cd_Car_mAP': 0.2, 'depth_mae': 1.5, 'frac_inside': 0.4}


def test_demo_table_waymo():
    from ddml.analysis.demo import TABLE_NOTES, demo_table
    text = demo_table([_waymo_row('baseline', 0.3), _waymo_row('ddml', 0.4)],
                      dataset='waymo')
    let = next(x for x in text.splitlines() if x.startswith('Vehicle LET'))
    assert '0.300 / 0.150 / 0.100' in let and '+0.100 / +0.050' in let
    ranged = next(x for x in text.splitlines()
                  if x.startswith('Vehicle LET-3D-AP  0-30'))
    assert '- / 0.100 / -' in ranged
    assert not any(x.startswith('Car AP3D') for x in text.splitlines())
    assert 'Left out on Waymo: KITTI AP40' in TABLE_NOTES['waymo']
    with pytest.raises(ValueError, match='no demo table'):
        demo_table([], dataset='nuscenes')


def test_efficacy_columns_waymo():
    from ddml.analysis.efficacy import (COLUMNS, WAYMO_COLUMNS, columns_for,
                                        efficacy_report, efficacy_tables)
    assert columns_for([{}]) is COLUMNS and columns_for('waymo') is \
        WAYMO_COLUMNS
    rows = []
    for seed, (b, d) in enumerate([(0.2, 0.3), (0.25, 0.33), (0.1, 0.22)]):
        for variant, v in (('baseline', b), ('ddml', d)):
            rows.append(dict(dataset='waymo', variant=variant, seed=seed,
                             **{'Waymo/Vehicle/LEVEL_2/LET-AP': v,
                                'Waymo/Vehicle/LEVEL_2/LET-APL': v / 2}))
    tables = efficacy_tables(rows)
    assert 'Vehicle LET-3D-AP L2' in tables and 'Car AP3D' not in tables
    assert '0.100 [' in tables  # the paired difference, 3 digits
    report = efficacy_report(rows)
    assert 'Vehicle LET-3D-AP L2 +0.100' in report
    with pytest.raises(ValueError, match='several datasets'):
        columns_for(rows + [dict(variant='baseline', seed=9)])
    with pytest.raises(ValueError, match='unknown dataset'):
        columns_for('nuscenes')


def _protocol(tmp_path, **changes):
    proto = dict(
        name='w', question='q', dataset='waymo',
        data=dict(root='data/w', num_train=4, num_val=2, num_test=2, seed=0,
                  scale=0.15),
        split='test', iters=2, arms=dict(baseline=[0, 1], ddml=[0, 1]),
        primary=[dict(id='P1', variant='ddml', reference='baseline',
                      metric='Waymo/Vehicle/LEVEL_2/LET-AP')],
        alpha=0.05, records='r', report='r.md')
    proto.update(changes)
    path = tmp_path / 'p.json'
    path.write_text(json.dumps(proto))
    return str(path)


def test_protocol_waymo(tmp_path):
    from ddml.analysis.protocol import (ProtocolError, load_protocol,
                                        missing_runs, protocol_columns,
                                        protocol_report)
    proto = load_protocol(_protocol(tmp_path))
    assert protocol_columns(proto)[0][1] == 'Waymo/Vehicle/LEVEL_2/LET-AP'
    with pytest.raises(ProtocolError, match=r"primary\[0\].metric.*not a "
                       'column of the waymo benchmark'):
        load_protocol(_protocol(tmp_path, primary=[dict(
            id='P1', variant='ddml', reference='baseline',
            metric='AP3D_mod_loose')]))
    with pytest.raises(ProtocolError, match="'dataset' is 'nuscenes'"):
        load_protocol(_protocol(tmp_path, dataset='nuscenes'))
    data = dict(proto['data'], layout={}, format='waymo')
    rows = [dict(dataset='waymo', variant=v, seed=s, split='test', iters=2,
                 data=data, commit='c',
                 **{'Waymo/Vehicle/LEVEL_2/LET-AP': x})
            for v, s, x in (('baseline', 0, 0.2), ('baseline', 1, 0.3),
                            ('ddml', 0, 0.3), ('ddml', 1, 0.5))]
    # a KITTI row of the same arm and seed is not a record of it
    assert missing_runs(proto, [dict(rows[0], dataset='kitti')]) == [
        ('baseline', 0), ('ddml', 0), ('baseline', 1), ('ddml', 1)]
    report = protocol_report(proto, rows)
    assert '| P1 |' in report and 'Vehicle LET-3D-AP L2' in report
    assert '+0.150' in report


def test_run_demo_args_waymo():
    mod = _tool('run_demo')
    args = mod.parse_args(['--dataset', 'waymo'])
    assert args.data_root == 'data/demo_waymo'
    assert args.work_dir == 'work_dirs/demo-waymo'
    assert mod.parse_args([]).data_root == 'data/demo_kitti'
    for config in mod.DATASET_CONFIGS['waymo'].values():
        assert (REPO_ROOT / config).is_file(), config
    assert sorted(mod.DATASET_CONFIGS['waymo']) == ['baseline', 'ddml']


def test_run_demo_refuses_a_method_without_waymo_config(capsys):
    with pytest.raises(SystemExit):
        _tool('run_demo').parse_args(['--dataset', 'waymo', '--method',
                                      'ddml-release'])
    assert ("--method ddml-release: no waymo config for it; with --dataset "
            "waymo choose from ['ddml']") in capsys.readouterr().err


def test_benchmark_args_waymo(tmp_path, capsys):
    mod = _tool('benchmark_efficacy')
    args = mod.parse_args(['--dataset', 'waymo'])
    assert args.variants == ['baseline', 'ddml', 'qi', 'dmap']
    assert args.data_root == 'data/demo_waymo'
    assert args.work_dir == 'work_dirs/efficacy-waymo'
    kitti = mod.parse_args([])
    assert kitti.dataset == 'kitti' and kitti.work_dir == 'work_dirs/efficacy'
    assert len(kitti.variants) == 6
    with pytest.raises(SystemExit):
        mod.parse_args(['--dataset', 'waymo', '--variants', 'baseline',
                        'metricdepth'])
    assert 'metricdepth has no waymo config' in capsys.readouterr().err
    proto = _protocol(tmp_path)
    assert mod.parse_args(['--protocol', proto]).work_dir == \
        'work_dirs/efficacy-waymo'
    with pytest.raises(SystemExit):
        mod.parse_args(['--protocol', proto, '--dataset', 'waymo'])
    assert '--dataset: the protocol' in capsys.readouterr().err
    bad = _protocol(tmp_path, arms=dict(baseline=[0], ddml=[0],
                                        metricdepth=[0]))
    assert mod.main(['--protocol', bad, '--report-only']) == 2
    assert 'arms: metricdepth has no waymo config' in \
        capsys.readouterr().err
