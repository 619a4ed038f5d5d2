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
            '--num-val', '4', '--work-dir', str(work), '--data-root',
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
    assert _tool().main(argv[1:] + ['--report-only']) == 0
