"""tools/analyze_descriptors.py end to end on a tiny synthetic dataset
with randomly initialised detectors (no checkpoint)."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINE = REPO_ROOT / 'configs' / 'demo' / \
    'smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'
WRAPPER = REPO_ROOT / 'configs' / 'demo' / \
    'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'


def _tool():
    spec = importlib.util.spec_from_file_location(
        'analyze_descriptors', REPO_ROOT / 'tools' / 'analyze_descriptors.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    from ddml.data_tools.synthetic_kitti import make_demo_dataset
    root = tmp_path_factory.mktemp('tiny_kitti')
    make_demo_dataset(root, 2, 3, seed=5, scale=0.3333, workers=1,
                      progress=False)
    return root


@pytest.mark.parametrize('config,kitti', [(BASELINE, True),
                                          (WRAPPER, False)])
def test_analyze_descriptors_random_model(tiny_root, tmp_path, capsys,
                                          config, kitti):
    if not config.is_file():
        pytest.skip(f'{config} not in this checkout')
    out = tmp_path / 'out'
    argv = [str(config), '--split', 'val', '--data-root', str(tiny_root),
            '--out-dir', str(out), '--name', 'm', '--no-progress']
    if kitti:
        argv.append('--kitti')
    assert _tool().main(argv) == 0
    text = capsys.readouterr().out
    assert 'Spearman rank correlation' in text
    assert 'inside [d/K - B, K d + B] (K=1.5, B=0.5)' in text
    kind = 'plain detector' if config == BASELINE else \
        'DepthDiscriminativeDetector'
    assert kind in text
    for name in ('m_pairs.png', 'm_pca.png', 'm_stats.json',
                 'm_descriptors.npz'):
        assert (out / name).is_file(), name
    stats = json.loads((out / 'm_stats.json').read_text())
    assert stats['num_images'] == 3 and stats['num_objects'] >= 2
    assert -1 <= stats['spearman'] <= 1
    assert 0 <= stats['frac_inside'] <= 1
    assert stats['frac_inside'] + stats['frac_above'] + \
        stats['frac_below'] == pytest.approx(1)
    if kitti:
        assert 'Car AP40 3D / BEV' in text
        assert (out / 'm_kitti_eval.log').is_file()
