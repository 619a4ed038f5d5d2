"""tools/benchmark_efficacy.py --dataset waymo end to end at a tiny size:
paired runs on synthetic Waymo-format data with the Waymo columns, the
cache, --report-only, and a protocol with ``"dataset": "waymo"`` on the
held-out split."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LET_AP = 'Waymo/Vehicle/LEVEL_2/LET-AP'


def _tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_efficacy', REPO_ROOT / 'tools' / 'benchmark_efficacy.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_benchmark_efficacy_waymo_tiny(tmp_path, capsys):
    work, data = tmp_path / 'work', tmp_path / 'data'
    argv = ['--foreground', '--dataset', 'waymo', '--variants', 'baseline',
            'dmap', '--seeds', '0', '--iters', '2', '--num-train', '6',
            '--num-val', '3', '--num-test', '0', '--work-dir', str(work),
            '--data-root', str(data), '--parallel', '2']
    assert _tool().main(argv) == 0
    out = capsys.readouterr().out
    assert 'efficacy on waymo: 2 runs' in out
    assert 'done dmap seed 0' in out and 'Vehicle LET-3D-AP' in out
    report = (work / 'efficacy.md').read_text()
    assert '(waymo)' in report.splitlines()[0]
    assert 'Vehicle LET-3D-AP L2' in report and 'Vehicle APH L1' in report
    assert 'Car AP3D' not in report
    assert 'variant - baseline (paired, 95 % CI)' in report
    rows = json.loads((work / 'efficacy.json').read_text())['rows']
    assert sorted((r['variant'], r['seed']) for r in rows) == [
        ('baseline', 0), ('dmap', 0)]
    for r in rows:
        assert r['dataset'] == 'waymo' and r['iters'] == 2
        assert 0.0 <= r[LET_AP] <= 1.0 and 'cd_Car_mAP' in r
        assert 'waymo' in r['config'] and r['data']['format'] == 'waymo'
    assert (data / 'waymo_infos_val.pkl').is_file()
    # a second run takes both results from the cache
    assert _tool().main(argv) == 0
    assert capsys.readouterr().out.count(': cached (') == 2
    assert _tool().main(argv[1:] + ['--report-only']) == 0
    # KITTI's report-only does not pick up the Waymo runs
    kitti = ['--report-only', '--variants', 'baseline', 'dmap', '--seeds',
             '0', '--iters', '2', '--work-dir', str(work)]
    assert _tool().main(kitti) == 1
    assert 'no finished kitti runs' in capsys.readouterr().out


@pytest.mark.slow
def test_benchmark_efficacy_waymo_protocol(tmp_path, capsys):
    """A Waymo protocol: its data and held-out split, blind progress,
    records, and the Holm report in the Waymo columns."""
    proto = dict(
        name='tiny-waymo', question='does it run on Waymo?', dataset='waymo',
        data=dict(root=str(tmp_path / 'data'), num_train=6, num_val=2,
                  num_test=3, seed=3, scale=0.15),
        split='test', iters=2, arms=dict(baseline=[0], ddml=[0]),
        primary=[dict(id='P1', variant='ddml', reference='baseline',
                      metric=LET_AP)],
        alpha=0.05, exploratory=[], manipulation_checks=['spearman'],
        records=str(tmp_path / 'records'), report=str(tmp_path / 'report.md'))
    path = tmp_path / 'protocol.json'
    path.write_text(json.dumps(proto))
    base = ['--protocol', str(path), '--work-dir', str(tmp_path / 'work')]
    tool = _tool()
    assert tool.main(base + ['--foreground', '--parallel', '2']) == 0
    out = capsys.readouterr().out
    assert 'on waymo: 2 runs' in out and 'evaluated on test' in out
    assert 'done ddml seed 0' in out
    assert 'LET-3D-AP' not in out  # blind until the analysis
    records = sorted(p.name for p in (tmp_path / 'records').iterdir())
    assert records == ['baseline_seed0.json', 'ddml_seed0.json']
    row = json.loads((tmp_path / 'records' / 'ddml_seed0.json').read_text())
    assert row['dataset'] == 'waymo' and row['split'] == 'test'
    assert row['num_images'] == 3 and row['data']['num_test'] == 3
    assert LET_AP in row
    assert tool.main(base + ['--report-only']) == 0
    report = (tmp_path / 'report.md').read_text()
    assert '| P1 |' in report and 'Vehicle LET-3D-AP L2' in report
    assert 'Car AP3D' not in report
