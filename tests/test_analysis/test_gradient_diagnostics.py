"""The auxiliary-loss diagnostics: the hook records while a real training
runs and leaves the training unchanged; the per-batch statistics agree with
the evaluation's own pair statistics and with autograd."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddml.testing import write_train_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'demo'
WRAPPER = DEMO / ('ddml_monodle_r18-half_secondfpn_1xb8-1200iter_demo-'
                  'kitti-mono3d.py')
BASELINE = DEMO / ('monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-'
                   'mono3d.py')


def _train(config: Path, work_dir: Path):
    res = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(config),
         '--work-dir', str(work_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={'OMP_NUM_THREADS': '1', **__import__('os').environ})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.slow
def test_hook_records_and_training_is_unchanged(synthetic_kitti_root,
                                                 tmp_path):
    hook = "custom_hooks = [dict(type='AuxLossDiagnosticsHook', interval=2)]"
    plain = write_train_config(tmp_path / 'plain.py', synthetic_kitti_root,
                               max_iters=4, checkpoint_interval=4, seed=5,
                               base=WRAPPER)
    diag = write_train_config(tmp_path / 'diag.py', synthetic_kitti_root,
                              max_iters=4, checkpoint_interval=4, seed=5,
                              base=WRAPPER, extra=hook)
    _train(plain, tmp_path / 'plain')
    _train(diag, tmp_path / 'diag')
    lines = (tmp_path / 'diag' / 'aux_diagnostics.jsonl').read_text()
    recs = [json.loads(x) for x in lines.splitlines()]
    assert [r['iter'] for r in recs] == [1, 2, 4]
    for r in recs:
        assert r['grad_norm/detector'] > 0
        assert r['grad_norm/loss_obj_depth'] > 0
        assert -1 <= r['cos/loss_obj_depth'] <= 1
        assert r['share/loss_qi'] >= 0 and r['feat_rms'] > 0
        if r['num_objects'] >= 2 and np.isfinite(r['pairs_inside']):
            assert r['pairs_below'] + r['pairs_inside'] + \
                r['pairs_above'] == pytest.approx(1)
    # the extra forward/backward of the hook changes nothing: same weights
    a = torch.load(tmp_path / 'plain' / 'iter_4.pth', map_location='cpu',
                   weights_only=False)['state_dict']
    b = torch.load(tmp_path / 'diag' / 'iter_4.pth', map_location='cpu',
                   weights_only=False)['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0,
                                   msg=key)
    # a plain detector is refused with the fix named
    bad = write_train_config(tmp_path / 'bad.py', synthetic_kitti_root,
                             max_iters=1, checkpoint_interval=1, seed=5,
                             base=BASELINE, extra=hook)
    res = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(bad),
         '--work-dir', str(tmp_path / 'bad')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert 'AuxLossDiagnosticsHook needs a DepthDiscriminativeDetector' in \
        res.stdout + res.stderr


def test_batch_statistics_match_autograd_and_pair_statistics(
        synthetic_kitti_root):
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS
    from ddml.analysis.descriptor_analysis import pair_statistics
    from ddml.analysis.gradient_diagnostics import feature_gradient_stats
    from ddml.analysis.model_eval import load_model
    cfg = Config.fromfile(str(WRAPPER))
    cfg.train_dataloader.dataset.data_root = str(synthetic_kitti_root) + '/'
    torch.manual_seed(0)
    model, _ = load_model(cfg, None)
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    data = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(min(4, len(dataset)))]),
        True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    K, B, eps = 1.5, 0.5, 10.0
    stats = feature_gradient_stats(model, data['inputs'],
                                   data['data_samples'], K, B, eps)
    for k, v in model.state_dict().items():  # buffers restored
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    assert all(p.grad is None for p in model.parameters())
    # the QI loss's gradient at the map, by hand
    feats = model.extract_feat(data['inputs'])
    feat, stride = model.aux_feature_map(feats, data['inputs'])
    losses = model.loss_by_feat(feats, data['inputs'], data['data_samples'])
    g, = torch.autograd.grad(losses['loss_qi'], feat, retain_graph=True)
    assert stats['grad_norm/loss_qi'] == pytest.approx(float(g.norm()),
                                                       rel=1e-5)
    assert stats['value/loss_qi'] == pytest.approx(
        float(losses['loss_qi']), rel=1e-5)
    # the pair fractions are the evaluation's (descriptor_analysis)
    gt, _ = model.auxiliary_ground_truth(data['data_samples'])
    objects = model.object_descriptors(feat.detach(), stride, gt)
    ref = pair_statistics(objects.descriptors.numpy(),
                          objects.depths.numpy(), K, B, eps)
    assert stats['pairs_inside'] == pytest.approx(ref['frac_inside'])
    assert stats['pairs_above'] == pytest.approx(ref['frac_above'])
    assert stats['num_objects'] == objects.descriptors.shape[0] >= 2


@pytest.mark.slow
def test_diagnose_tool_tiny(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'diagnose_aux_losses', REPO / 'tools' / 'diagnose_aux_losses.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    work = tmp_path / 'work'
    assert mod.main(['--variants', 'ddml', 'qi', '--iters', '2',
                     '--interval', '1', '--num-train', '8', '--num-val', '3',
                     '--num-test', '0', '--data-root', str(tmp_path / 'd'),
                     '--work-dir', str(work)]) == 0
    out = capsys.readouterr().out
    assert (work / 'figures' / 'aux_diagnostics.png').is_file()
    assert (work / 'figures' / 'ddml_pairs.png').is_file()
    res = json.loads((work / 'diagnostics.json').read_text())
    assert set(res['series']) == {'ddml', 'qi'}
    assert res['series']['ddml']['iter'] == [1, 2]
    # qi alone has no depth-map head: no obj_depth gradient recorded
    assert 'share/loss_obj_depth' not in res['series']['qi']
    assert 'share/loss_qi' in res['series']['qi']
    assert 'median_e_per_m' in out and 'ddml (val):' in out
