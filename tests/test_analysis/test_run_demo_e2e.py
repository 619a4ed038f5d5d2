"""tools/run_demo.py end to end at a tiny size: data, two trainings side by
side, evaluation, table and every figure."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_run_demo_tiny(tmp_path, capsys):
    work, data = tmp_path / 'work', tmp_path / 'data'
    argv = ['--iters', '2', '--num-train', '8', '--num-val', '4',
            '--num-test', '3', '--work-dir', str(work), '--data-root',
            str(data), '--threads', '1']
    assert _tool('run_demo').main(argv) == 0
    out = capsys.readouterr().out
    assert 'Car AP3D  E/M/H  IoU 0.5' in out
    assert 'Car centre-dist AP 0.5/1/2/4 m' in out
    results = json.loads((work / 'demo_results.json').read_text())
    names = [r['name'] for r in results['rows']]
    assert names == ['baseline', 'ddml']
    for row in results['rows']:
        assert 0 <= row['cd_Car_mAP'] <= 1 or row['cd_Car_mAP'] is None
        assert row['num_images'] == 4
        assert row['train_cpu_s_per_iter'] > 0
    assert results['parallel'] == 2 and results['threads'] == 1
    table = (work / 'demo_table.md').read_text()
    header = [c.strip() for c in table.splitlines()[0].split('|')[1:-1]]
    assert header == ['metric', 'baseline', 'ddml', 'difference']
    figures = work / 'figures'
    for name in ('training_curves.png', 'val_gallery.png',
                 'depth_error_vs_distance.png', 'baseline_pairs.png',
                 'ddml_pca.png'):
        assert (figures / name).is_file(), name
        assert str(figures / name) in out, f'{name} is listed at the end'
    for name in ('baseline', 'ddml'):
        assert (work / name / 'iter_2.pth').is_file()
    # a second run reuses data and checkpoints, and evaluates on the
    # held-out split
    assert _tool('run_demo').main(
        argv + ['--skip-train', '--eval-split', 'test']) == 0
    out = capsys.readouterr().out
    assert 'not re-rendering' in out and 'on the test split' in out
    results = json.loads((work / 'demo_results.json').read_text())
    assert results['eval_split'] == 'test'
    assert [r['num_images'] for r in results['rows']] == [3, 3]
    assert (figures / 'test_gallery.png').is_file()
