"""Depth-error matching, tables, training logs, run helpers."""
import importlib.util
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from ddml.analysis.demo_report import (box_iou_2d, depth_errors, fmt,
                                       format_table, match_detections,
                                       read_scalars, train_seconds_per_iter)

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASSES = ['Pedestrian', 'Cyclist', 'Car']


def _annos(names, boxes, z, scores=None):
    n = len(names)
    loc = np.zeros((n, 3))
    loc[:, 2] = z
    out = dict(name=np.array(names), bbox=np.array(boxes, float).reshape(
        n, 4), location=loc)
    if scores is not None:
        out['score'] = np.array(scores, float)
    return out


def test_box_iou_2d():
    iou = box_iou_2d([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10],
                                        [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1., 50 / 150, 0.]])


def test_match_by_iou_greedy_by_score_and_class():
    gt = _annos(['Car', 'Car', 'DontCare', 'Pedestrian'],
                [[0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10],
                 [300, 0, 310, 10]], [10., 20., 30., 40.])
    pred = _annos(
        ['Car', 'Car', 'Car', 'Car', 'Cyclist'],
        [[0, 0, 10, 10],       # exact on GT0, low score
         [1, 0, 11, 10],       # IoU 0.82 with GT0, high score: wins GT0
         [104, 0, 114, 10],    # IoU 6/14 = 0.43 with GT1: no match
         [200, 0, 210, 10],    # on the DontCare: never matched
         [300, 0, 310, 10]],   # wrong class for the Pedestrian
        [11., 12.5, 19., 30., 40.], scores=[0.3, 0.9, 0.8, 0.7, 0.6])
    matches = match_detections(pred, gt, CLASSES)
    assert len(matches) == 1
    assert matches[0]['z_pred'] == 12.5 and matches[0]['z_gt'] == 10.
    assert matches[0]['score'] == 0.9
    # lowering the IoU threshold lets the third detection match GT1 and
    # the exact-but-low-score one still loses GT0
    matches = match_detections(pred, gt, CLASSES, threshold=0.4)
    assert sorted((m['z_pred'], m['z_gt']) for m in matches) == [
        (12.5, 10.), (19., 20.)]


def test_match_by_bev_distance():
    gt = _annos(['Car', 'Car'], [[0, 0, 1, 1]] * 2, [10., 30.])
    pred = _annos(['Car', 'Car'], [[50, 50, 60, 60]] * 2, [11.5, 27.],
                  scores=[0.5, 0.6])
    matches = match_detections(pred, gt, CLASSES, criterion='bev',
                               threshold=2.0)
    assert [(m['z_pred'], m['z_gt']) for m in matches] == [(11.5, 10.)]
    with pytest.raises(ValueError):
        match_detections(pred, gt, CLASSES, criterion='3d')
    empty = _annos([], np.zeros((0, 4)), np.zeros(0))
    assert match_detections(empty, gt, CLASSES) == []
    assert match_detections(pred, empty, CLASSES) == []


def test_depth_errors():
    frames = [[dict(name='Car', z_pred=12., z_gt=10.)],
              [],
              [dict(name='Car', z_pred=19., z_gt=20.),
               dict(name='Pedestrian', z_pred=5., z_gt=5.5)]]
    all_ = depth_errors(frames)
    assert all_['num_matched'] == 3
    assert all_['mae'] == pytest.approx((2 + 1 + 0.5) / 3)
    assert all_['median'] == pytest.approx(1.)
    car = depth_errors(frames, cls='Car')
    assert car['num_matched'] == 2 and car['mae'] == pytest.approx(1.5)
    none = depth_errors([[]])
    assert none['num_matched'] == 0 and math.isnan(none['mae'])


def test_format_table_plain_and_markdown():
    rows = [['baseline', 1.234, 7, float('nan')], ['ddml', 10.5, 12, None]]
    plain = format_table(['run', 'AP', 'n', 'x'], rows)
    lines = plain.splitlines()
    assert lines[0].split() == ['run', 'AP', 'n', 'x']
    assert lines[2].split() == ['baseline', '1.23', '7', '-']
    assert lines[3].split() == ['ddml', '10.50', '12', '-']
    assert len({len(line) for line in lines}) == 1  # aligned
    md = format_table(['run', 'AP', 'n', 'x'], rows, markdown=True,
                      digits=1)
    mlines = md.splitlines()
    assert mlines[0].startswith('| run') and mlines[1].startswith('|:')
    assert '| 10.5 |' in mlines[3]
    with pytest.raises(ValueError):
        format_table(['a', 'b'], [[1]])
    assert fmt(None) == '-' and fmt(3) == '3' and fmt(2.0, 0) == '2'


def test_read_scalars_and_iteration_time(tmp_path):
    path = tmp_path / 'scalars.json'
    lines = [dict(lr=1e-4, loss=3., loss_cls=1., time=9., iter=10, step=10),
             dict(lr=2e-4, loss=2., loss_cls=.5, loss_qi=.2, time=2.,
                  iter=20, step=20),
             dict(lr=3e-4, loss=1., loss_cls=.4, loss_qi=.1, time=4.,
                  iter=30, step=30),
             dict(**{'Kitti metric/x': 0.5}, step=30)]
    path.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    sc = read_scalars(str(path))
    np.testing.assert_array_equal(sc['step'], [10, 20, 30])
    assert math.isnan(sc['loss_qi'][0]) and sc['loss_qi'][2] == .1
    assert train_seconds_per_iter(sc) == pytest.approx(3.)  # skips 9 s
    assert len(read_scalars(str(path), split='all')['step']) == 4
    from ddml.analysis.efficacy import loss_magnitudes
    mags = loss_magnitudes(sc, last_frac=0.34)
    assert mags['loss'] == dict(first=3., final=1.)
    assert mags['loss_qi']['first'] == .2


def test_schedule_options_and_progress_line():
    from ddml.analysis.runs import _condense, schedule_options
    opts = schedule_options(100, seed=3, data_root='/d/x')
    assert 'train_cfg.max_iters=100' in opts
    assert 'param_scheduler.1.milestones=[80]' in opts
    assert 'param_scheduler.0.end=20' in opts
    assert 'val_evaluator=None' in opts and 'randomness.seed=3' in opts
    assert 'train_dataloader.dataset.data_root=/d/x/' in opts
    with pytest.raises(ValueError):
        schedule_options(0)
    from mmengine.config import DictAction  # the options parse
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    parsed = parser.parse_args(['--o'] + opts).o
    assert parsed['val_cfg'] is None
    assert parsed['param_scheduler.1.milestones'] == [80]
    line = ('11/21 11:09:31 - mmengine - INFO - Iter(train) [ 40/300]  lr: '
            '1.7e-04  eta: 0:03:34  time: 2.3152  data_time: 0.0192  loss: '
            '28.6297  loss_cls: 4.4358  loss_bbox: 24.1939  loss_qi: 0.9')
    short = _condense(line, 'ddml')
    assert 'iter    40/300' in short and 'eta 0:03:34' in short
    assert '2.32 s/it' in short and 'qi 0.900' in short
    assert _condense('some other line', 'x') is None


def test_ensure_dataset_manifest(tmp_path, monkeypatch):
    import ddml.data_tools.synthetic_kitti as sk
    from ddml.analysis import runs
    calls = []

    def fake(root, num_train, num_val, seed, scale, progress, layout,
             num_test):
        calls.append((num_train, num_val, seed, num_test))
        assert not (Path(root) / 'testing').exists()  # old one removed
        frames = [dict(sample_idx=i, cam_instances=dict(
            CAM2=[dict(bbox_label=2)] * (i % 2))) for i in range(4)]
        if num_test:
            (Path(root) / 'testing').mkdir()
        for split in ('train', 'val', 'trainval') + \
                (('test', ) if num_test else ()):
            with open(Path(root) / f'kitti_infos_{split}.pkl', 'wb') as f:
                pickle.dump(dict(metainfo={}, data_list=frames), f)
    monkeypatch.setattr(sk, 'make_demo_dataset', fake)
    root = tmp_path / 'd'
    root.mkdir()
    say = []
    assert runs.ensure_dataset(str(root), 4, 2, 0, log=say.append)
    assert not runs.ensure_dataset(str(root), 4, 2, 0, log=say.append)
    assert runs.ensure_dataset(str(root), 4, 2, 1, log=say.append)
    (root / 'kitti_infos_val.pkl').unlink()
    assert runs.ensure_dataset(str(root), 4, 2, 1, log=say.append)
    # infos of an older converter (no per-object difficulty) are redone
    import ddml.data_tools.kitti_converter as kc
    monkeypatch.setattr(kc, 'INFO_VERSION', kc.INFO_VERSION - 1)
    assert runs.ensure_dataset(str(root), 4, 2, 1, log=say.append)
    # the held-out split: rendered when asked for, its infos checked, and
    # its folder removed before a rendering without it
    assert runs.ensure_dataset(str(root), 4, 2, 1, log=say.append,
                               num_test=3)
    assert not runs.ensure_dataset(str(root), 4, 2, 1, log=say.append,
                                   num_test=3)
    (root / 'kitti_infos_test.pkl').unlink()
    assert runs.ensure_dataset(str(root), 4, 2, 1, log=say.append,
                               num_test=3)
    assert runs.ensure_dataset(str(root), 4, 2, 1, log=say.append)
    assert not (root / 'testing').exists()
    assert calls == [(4, 2, 0, 0), (4, 2, 1, 0), (4, 2, 1, 0), (4, 2, 1, 0),
                     (4, 2, 1, 3), (4, 2, 1, 3), (4, 2, 1, 0)]
    assert sum('not re-rendering' in x for x in say) == 2
    # frames without objects stay: ddml lets KittiDataset load them
    with open(root / 'kitti_infos_train.pkl', 'rb') as f:
        kept = pickle.load(f)['data_list']
    assert [x['sample_idx'] for x in kept] == [0, 1, 2, 3]


def test_kitti_summary_keys():
    from ddml.analysis.model_eval import annotated_pipeline, kitti_summary
    metrics = {
        'pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict': 1.5,
        'pred_instances_3d/KITTI/Car_BEV_AP40_easy_loose': 20.,
        'pred_instances_3d/KITTI/Car_2D_AP40_hard_strict': 3.,
        'pred_instances_3d/KITTI/Car_3D_AP11_moderate_strict': 9.,
        'pred_instances_3d/KITTI/Cyclist_3D_AP40_moderate_strict': 9.,
        'pred_instances/KITTI/Car_2D_AP40_hard_strict': 4.,
    }
    assert kitti_summary(metrics) == dict(AP3D_mod=1.5,
                                          APBEV_easy_loose=20.,
                                          AP2D_hard=3., AP2Dreg_hard=4.)
    pipe = annotated_pipeline([
        dict(type='LoadImageFromFileMono3D'),
        dict(type='AffineResize', img_scale=(416, 128), down_ratio=4),
        dict(type='Pack3DDetInputs', keys=['img'])])
    assert [t['type'] for t in pipe] == [
        'LoadImageFromFileMono3D', 'LoadAnnotations3D', 'AffineResize',
        'Pack3DDetInputs']
    assert pipe[1]['with_bbox_depth'] and 'centers_2d' in pipe[3]['keys']


def _rows():
    rows = []
    for seed, (ap, sp) in enumerate([(1., .1), (3., .3)]):
        rows.append(dict(variant='baseline', seed=seed, AP3D_mod=ap,
                         spearman=sp, frac_inside=.5, depth_matched=4,
                         losses=dict(loss=dict(first=9., final=2. + seed))))
    rows.append(dict(variant='qi', seed=0, AP3D_mod=5., spearman=.6,
                     frac_inside=.25,
                     losses=dict(loss_qi=dict(first=1., final=.5))))
    return rows


def test_aggregate_and_efficacy_tables():
    from ddml.analysis.efficacy import aggregate, efficacy_tables
    agg = aggregate(_rows())
    base = agg['baseline']
    assert base['AP3D_mod']['mean'] == pytest.approx(2.)
    assert base['AP3D_mod']['std'] == pytest.approx(math.sqrt(2.))
    assert base['_seeds'] == [0, 1] and base['_losses']['loss'] == 2.5
    assert math.isnan(agg['qi']['spearman']['std'])
    text = efficacy_tables(_rows())
    first = next(x for x in text.splitlines() if x.startswith('| baseline'))
    assert [c.strip() for c in first.split('|')[1:3]] == ['baseline', '0 1']
    assert '2.00 ± 1.41' in text and '50.0 ± 0.0' in text
    assert '0.600' in text and 'loss_qi' in text
    # the paired table: qi seed 0 against baseline seed 0 (one pair)
    paired = [x for x in text.splitlines()
              if x.startswith('| QI loss only')][1]
    assert paired.split('|')[2].strip() == '1'  # pairs
    assert '+4.00' in paired and '+0.500' in paired


def _paired_rows(diffs, variant='ddml'):
    """Baseline and ``variant`` rows; ``diffs``: key -> per-seed difference
    (each seed shifts both members of its pair alike)."""
    n = len(next(iter(diffs.values())))
    rows = []
    for seed in range(n):
        base = {key: 10. + seed for key in diffs}
        rows.append(dict(variant='baseline', seed=seed, **base))
        rows.append(dict(variant=variant, seed=seed, **{
            key: base[key] + d[seed] for key, d in diffs.items()}))
    return rows


def test_paired_differences_confidence_interval():
    from scipy import stats

    from ddml.analysis.efficacy import paired_differences
    d = paired_differences(_paired_rows({'AP3D_mod_loose': [1., 2., 3.]}),
                           keys=['AP3D_mod_loose'])['ddml']['AP3D_mod_loose']
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd of 1, 2, 3 is 1
    assert d['n'] == 3 and d['mean'] == pytest.approx(2.)
    assert d['std'] == pytest.approx(1.)
    assert (d['low'], d['high']) == pytest.approx((2 - half, 2 + half))
    assert not d['outside']  # 2 - 2.48 < 0
    tight = paired_differences(
        _paired_rows({'AP3D_mod_loose': [1., 1.1, .9, 1., 1.]}),
        keys=['AP3D_mod_loose'])
    assert tight['ddml']['AP3D_mod_loose']['outside']
    # unpaired seeds are left out of the comparison
    rows = _paired_rows({'AP3D_mod_loose': [1., 1.1, .9]})
    rows.append(dict(variant='ddml', seed=7, AP3D_mod_loose=99.))
    assert paired_differences(rows, keys=['AP3D_mod_loose'])['ddml'][
        'AP3D_mod_loose']['n'] == 3


def test_efficacy_report_words():
    from ddml.analysis.efficacy import efficacy_report
    rows = _paired_rows({'AP3D_mod_loose': [1., 1.1, .9, 1., 1.],  # better
                         'depth_mae': [.3, .31, .29, .3, .3]})  # worse
    rows += [r for r in _paired_rows({'AP3D_mod_loose': [1., -1., 2.]},
                                     variant='qi')
             if r['variant'] == 'qi']
    text = efficacy_report(rows)
    ddml = next(x for x in text.splitlines() if x.startswith('- DDML (ours'))
    assert ('better than the baseline beyond the 95 % interval in Car AP3D '
            'mod 0.5 +1.00') in ddml
    assert 'Worse beyond it in depth MAE 2D-matched +0.300' in ddml
    qi = next(x for x in text.splitlines() if x.startswith('- QI loss'))
    assert 'better nowhere' in qi and 'Car AP3D mod 0.5' in qi.split(
        'no measurable difference')[1]


def test_benchmark_jobs_seed_major():
    from ddml.analysis.efficacy import DEFAULT_SEEDS, benchmark_jobs
    jobs = benchmark_jobs(DEFAULT_SEEDS)
    assert len(jobs) == 5 * 3 + 3 * 3
    assert jobs[:6] == [(v, 0) for v in DEFAULT_SEEDS]
    assert jobs[-3:] == [('baseline', 4), ('ddml', 4), ('ddml-release', 4)]
    with pytest.raises(ValueError, match='unknown variants'):
        benchmark_jobs({'nope': [0]})


def test_demo_table():
    from ddml.analysis.demo import demo_table
    rows = [dict(name='baseline', AP3D_easy_loose=1., AP3D_mod_loose=2.,
                 AP3D_hard_loose=3., depth_mae=2.5, depth_matched=10,
                 spearman=.2, frac_inside=.1,
                 **{'cd_Car_AP_1.0m': .25, 'cd_depth_abs_err_20-40m': 3.}),
            dict(name='ddml', AP3D_easy_loose=2., AP3D_mod_loose=2.,
                 AP3D_hard_loose=1., depth_mae=2., depth_matched=12,
                 spearman=.5, frac_inside=.3,
                 **{'cd_Car_AP_1.0m': .5, 'cd_depth_abs_err_20-40m': 2.5})]
    text = demo_table(rows)
    line = next(x for x in text.splitlines()
                if x.startswith('Car AP3D  E/M/H  IoU 0.5'))
    assert '1.00 / 2.00 / 3.00' in line and '+1.00 / +0.00 / -2.00' in line
    depth = next(x for x in text.splitlines() if x.startswith('depth MAE'))
    assert depth.split()[-3:] == ['2.500', '2.000', '-0.500']
    inside = next(x for x in text.splitlines() if x.startswith('pairs'))
    assert inside.split()[-3:] == ['10.0', '30.0', '+20.0']
    cd = next(x for x in text.splitlines() if x.startswith('Car centre-dist '
                                                           'AP'))
    assert '- / 0.250 / - / -' in cd and '- / +0.250 / - / -' in cd
    ranged = next(x for x in text.splitlines() if x.startswith('depth error'))
    assert '- / 3.00 / -' in ranged and '- / -0.50 / -' in ranged


def test_run_demo_args():
    spec = importlib.util.spec_from_file_location(
        'run_demo', REPO_ROOT / 'tools' / 'run_demo.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = mod.parse_args(['--iters', '7', '--skip-data'])
    assert args.iters == 7 and args.skip_data and args.method == 'ddml'
    for config in [mod.BASELINE_CONFIG] + list(mod.METHOD_CONFIGS.values()):
        assert (REPO_ROOT / config).is_file(), config


def test_run_benchmark_reports_one_at_a_time(tmp_path):
    """Two cached runs finish at once: on_result must not overlap (the
    report file was written by both threads at the same time)."""
    import threading
    import time

    from ddml.analysis.efficacy import run_benchmark
    for variant in ('baseline', 'ddml'):
        d = tmp_path / variant / 'seed0'
        d.mkdir(parents=True)
        (d / 'result.json').write_text(json.dumps(dict(
            variant=variant, seed=0, iters=3, config='c.py')))
    busy, overlaps, calls = threading.Lock(), [], []

    def on_result(rows):
        if not busy.acquire(blocking=False):
            overlaps.append(len(rows))
            return
        time.sleep(0.2)
        calls.append(len(rows))
        busy.release()

    rows = run_benchmark([('baseline', 0), ('ddml', 0)], 3, str(tmp_path),
                         str(tmp_path), {'baseline': 'c.py', 'ddml': 'c.py'},
                         parallel=2, log=lambda msg: None,
                         on_result=on_result)
    assert [r['variant'] for r in rows] == ['baseline', 'ddml']
    assert overlaps == [] and sorted(calls) == [1, 2]


def test_every_variant_builds_what_its_title_says():
    """Each benchmark variant's --cfg-options merge into its config and
    build the wrapper they describe (e.g. ddml-w3: QI weight 3; ddml-k1.3:
    K=1.3; dmap: no QI loss)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet3d.registry import MODELS
    from ddml.analysis.efficacy import VARIANTS
    from ddml.analysis.runs import parse_cfg_options
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        'run_demo', root / 'tools' / 'run_demo.py')
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)
    DATASET_CONFIGS = run_demo.DATASET_CONFIGS
    init_default_scope('mmdet3d')
    built = {}
    for name in ('ddml', 'dmap', 'qi', 'ddml-w3', 'ddml-k1.3'):
        _, role, extra = VARIANTS[name]
        cfg = Config.fromfile(str(root / DATASET_CONFIGS['kitti'][role]))
        cfg.merge_from_dict(parse_cfg_options(extra))
        built[name] = MODELS.build(cfg.model)
    assert built['ddml'].qi_loss.loss_weight == 1.0
    assert built['ddml'].qi_loss.K == 1.5
    assert built['ddml-w3'].qi_loss.loss_weight == 3.0
    assert built['ddml-w3'].qi_loss.K == 1.5
    assert built['ddml-k1.3'].qi_loss.K == 1.3
    assert built['ddml-k1.3'].qi_loss.loss_weight == 1.0
    assert built['dmap'].qi_loss is None
    assert built['dmap'].depth_map_head is not None
    assert built['qi'].depth_map_head is None
