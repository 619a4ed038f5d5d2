"""tools/run_demo.py --dataset waymo end to end at a tiny size: synthetic
Waymo-format data, the Waymo demo detector and the same detector with DDML
trained side by side, WaymoMono3DMetric on the val and the held-out split,
table with LET-3D-AP for both models, every figure."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_rows(rows, num_images, trained=True):
    assert [r['name'] for r in rows] == ['baseline', 'ddml']
    for row in rows:
        assert row['num_images'] == num_images
        for key in ('Waymo/Vehicle/LEVEL_2/LET-AP',
                    'Waymo/Vehicle/LEVEL_2/LET-APL',
                    'Waymo/Vehicle/LEVEL_2/LET-APH',
                    'Waymo/Vehicle/LEVEL_1/AP', 'Waymo/Vehicle/LEVEL_2/APH',
                    'Waymo/Vehicle/LEVEL_1/Range_30-50m/AP'):
            assert 0.0 <= row[key] <= 1.0, key
        # the KITTI benchmark is left out, the camera-label metrics are in
        assert not any(k.startswith(('AP3D', 'APBEV', 'AP2D')) for k in row)
        assert row['cd_Car_mAP'] is None or 0 <= row['cd_Car_mAP'] <= 1 or \
            math.isnan(row['cd_Car_mAP'])
        assert row['train_cpu_s_per_iter'] > 0 or not trained


@pytest.mark.slow
def test_run_demo_waymo_tiny(tmp_path, capsys):
    work, data = tmp_path / 'work', tmp_path / 'data'
    argv = ['--dataset', 'waymo', '--iters', '2', '--num-train', '8',
            '--num-val', '4', '--num-test', '3', '--work-dir', str(work),
            '--data-root', str(data), '--threads', '1']
    assert _tool('run_demo').main(argv) == 0
    out = capsys.readouterr().out
    assert '[1/4] synthetic Waymo-format data' in out
    let = [x for x in out.splitlines()
           if x.startswith('Vehicle LET-3D-AP/APL/APH  L2')]
    assert len(let) == 1 and let[0].count('/') == 8  # both models, diff
    assert 'Left out on Waymo: KITTI AP40' in out
    assert (data / 'training' / 'image_0' / '1000003.jpg').is_file()
    assert (data / 'testing' / 'image_0' / '2000002.jpg').is_file()
    results = json.loads((work / 'demo_results.json').read_text())
    assert results['dataset'] == 'waymo'
    _check_rows(results['rows'], 4)
    table = (work / 'demo_table.md').read_text()
    header = [c.strip() for c in table.splitlines()[0].split('|')[1:-1]]
    assert header == ['metric', 'baseline', 'ddml', 'difference']
    assert 'Vehicle LET-3D-AP  0-30/30-50/50+ m' in table
    figures = work / 'figures'
    for name in ('training_curves.png', 'val_gallery.png',
                 'depth_error_vs_distance.png', 'baseline_pairs.png',
                 'ddml_pca.png', 'baseline_waymo_eval.log'):
        assert (figures / name).is_file(), name
    assert 'Waymo metrics over 4 frames' in \
        (figures / 'ddml_waymo_eval.log').read_text()
    for name in ('baseline', 'ddml'):
        assert (work / name / 'iter_2.pth').is_file()
    # again: data and checkpoints reused, the held-out split (testing/)
    assert _tool('run_demo').main(
        argv + ['--skip-train', '--eval-split', 'test']) == 0
    out = capsys.readouterr().out
    assert 'not re-rendering' in out and 'on the test split' in out
    results = json.loads((work / 'demo_results.json').read_text())
    assert results['eval_split'] == 'test'
    _check_rows(results['rows'], 3, trained=False)
    assert (figures / 'test_gallery.png').is_file()
