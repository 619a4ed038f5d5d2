"""tools/benchmark_efficacy.py end to end at a tiny size: paired runs two at
a time, the report with the paired table, resuming from the cache."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_efficacy', REPO_ROOT / 'tools' / 'benchmark_efficacy.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_benchmark_efficacy_tiny(tmp_path, capsys):
    work, data = tmp_path / 'work', tmp_path / 'data'
    argv = ['--foreground', '--variants', 'baseline', 'ddml-release',
            '--seeds', '0', '1', '--iters', '2', '--num-train', '8',
            '--num-val', '4', '--num-test', '0', '--work-dir', str(work),
            '--data-root',
            str(data), '--parallel', '2']
    assert _tool().main(argv) == 0
    out = capsys.readouterr().out
    report = (work / 'efficacy.md').read_text()
    assert 'variant - baseline (paired, 95 % CI)' in report
    assert 'DDML as released' in report and '(2 paired seeds)' in report
    rows = json.loads((work / 'efficacy.json').read_text())['rows']
    assert sorted((r['variant'], r['seed']) for r in rows) == [
        ('baseline', 0), ('baseline', 1), ('ddml-release', 0),
        ('ddml-release', 1)]
    for r in rows:
        assert r['iters'] == 2 and 'cd_Car_mAP' in r
        assert r['config'].endswith('.py')
    assert 'variant - baseline' in out
    # a second run takes every result from the cache
    assert _tool().main(argv) == 0
    assert capsys.readouterr().out.count(': cached (') == 4
    # records written under the configs' old names (before the rename of
    # issue 23) are the same runs
    for path in work.glob('*/seed*/result.json'):
        row = json.loads(path.read_text())
        row['config'] = row['config'].replace('1xb8-1200iter_demo-kitti',
                                              '1xb8-1k_demo-kitti')
        assert '1xb8-1k_demo-kitti' in row['config']
        path.write_text(json.dumps(row))
    assert _tool().main(argv) == 0
    assert capsys.readouterr().out.count(': cached (') == 4
    assert _tool().main(argv[1:] + ['--report-only']) == 0


def _protocol(tmp_path, arms):
    proto = dict(
        name='tiny', question='does it run?',
        data=dict(root=str(tmp_path / 'data'), num_train=8, num_val=2,
                  num_test=4, seed=3, scale=0.3333),
        split='test', iters=2, arms=arms,
        primary=[dict(id='P1', variant='ddml', reference='baseline',
                      metric='AP3D_mod_loose')],
        alpha=0.05, exploratory=[], manipulation_checks=['spearman'],
        records=str(tmp_path / 'records'),
        report=str(tmp_path / 'report.md'))
    path = tmp_path / 'protocol.json'
    path.write_text(json.dumps(proto))
    return str(path)


@pytest.mark.slow
def test_benchmark_efficacy_protocol(tmp_path, capsys):
    """A protocol run: its data and held-out split, records as JSON, blind
    progress, resume from the records, no analysis before the primary
    arms are complete, then the Holm report."""
    proto = _protocol(tmp_path, dict(baseline=[0, 1], ddml=[0, 1]))
    base = ['--protocol', proto, '--work-dir', str(tmp_path / 'work')]
    tool = _tool()
    assert tool.main(base + ['--foreground', '--variants', 'baseline',
                             '--parallel', '2']) == 0
    out = capsys.readouterr().out
    assert 'evaluated on test' in out and 'done baseline seed 1' in out
    assert 'AP3D mod 0.5' not in out  # blind until complete
    # refused while the ddml arm is missing
    assert tool.main(base + ['--report-only']) == 1
    assert 'not there yet' in capsys.readouterr().out
    assert tool.main(base + ['--foreground', '--parallel', '2']) == 0
    assert capsys.readouterr().out.count(': cached (') == 2
    records = sorted(p.name for p in (tmp_path / 'records').iterdir())
    assert records == ['baseline_seed0.json', 'baseline_seed1.json',
                       'ddml_seed0.json', 'ddml_seed1.json']
    row = json.loads((tmp_path / 'records' / 'ddml_seed1.json').read_text())
    assert row['split'] == 'test' and row['num_images'] == 4
    assert row['data_seed'] == 3 and row['data']['num_test'] == 4
    assert row['iters'] == 2 and row['commit']
    assert 'cd_depth_count_0-20m' in row and 'depth_matched' in row
    assert tool.main(base + ['--report-only']) == 0
    report = (tmp_path / 'report.md').read_text()
    assert 'Holm' in report and '| P1 |' in report
    # what a protocol fixes cannot be given beside it
    with pytest.raises(SystemExit):
        tool.parse_args(base + ['--iters', '5'])
    assert '--iters: the protocol' in capsys.readouterr().err
    # a follow-up protocol pairs a new arm with these records: it runs only
    # the new arm and its analysis reads the baseline from here
    follow = json.loads(Path(proto).read_text())
    follow.update(arms=dict(baseline=[0, 1], dmap=[0, 1]),
                  primary=[dict(id='P1', variant='dmap', reference='baseline',
                                metric='AP3D_mod_loose')],
                  reuse=[dict(records=str(tmp_path / 'records'),
                              arms=['baseline'])],
                  records=str(tmp_path / 'records2'),
                  report=str(tmp_path / 'report2.md'))
    (tmp_path / 'follow.json').write_text(json.dumps(follow))
    base2 = ['--protocol', str(tmp_path / 'follow.json'), '--work-dir',
             str(tmp_path / 'work2')]
    assert tool.main(base2 + ['--foreground', '--parallel', '2']) == 0
    out = capsys.readouterr().out
    assert 'not run here: baseline' in out and '0 of their runs not' in out
    assert sorted(p.name for p in (tmp_path / 'records2').iterdir()) == [
        'dmap_seed0.json', 'dmap_seed1.json']
    assert tool.main(base2 + ['--report-only']) == 0
    report = (tmp_path / 'report2.md').read_text()
    assert 'Arms read from earlier records' in report and '| P1 |' in report
