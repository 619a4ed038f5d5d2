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


def test_plain_and_wrapped_detectors_read_the_same_descriptors(tiny_root):
    """evaluate_checkpoint reads descriptors along the wrapper's route for
    a plain detector too: same weights -> same descriptors."""
    import torch
    from mmengine.config import Config

    from ddml.analysis.model_eval import (descriptor_reader,
                                          evaluate_checkpoint, load_model)
    torch.manual_seed(0)
    plain_cfg = Config.fromfile(str(BASELINE))
    model, _ = load_model(plain_cfg, None)
    ckpt = tiny_root / 'plain.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    reader = descriptor_reader(model, plain_cfg)
    assert type(reader).__name__ == 'DepthDiscriminativeDetector'
    assert reader.detector is model and reader.qi_loss is None
    kw = dict(split='val', data_root=str(tiny_root), kitti=False,
              progress=False)
    plain = evaluate_checkpoint(str(BASELINE), str(ckpt), **kw)
    wrapped_cfg = Config.fromfile(str(WRAPPER))
    wrapper, _ = load_model(wrapped_cfg, None)
    wrapper.detector.load_state_dict(model.state_dict())
    ckpt_w = tiny_root / 'wrapped.pth'
    torch.save(dict(state_dict=wrapper.state_dict()), ckpt_w)
    wrapped = evaluate_checkpoint(str(WRAPPER), str(ckpt_w), **kw)
    assert plain['descriptors'].shape[0] >= 2
    torch.testing.assert_close(torch.from_numpy(plain['descriptors']),
                               torch.from_numpy(wrapped['descriptors']))
    assert (plain['depths'] == wrapped['depths']).all()


def test_loss_gradient_norms_of_every_loss(tiny_root):
    from ddml.analysis.gradient_diagnostics import loss_gradient_norms
    options = {'train_dataloader.batch_size': 2,
               'train_dataloader.dataset.ann_file': 'kitti_infos_val.pkl'}
    norms = loss_gradient_norms(str(WRAPPER), None, data_root=str(tiny_root),
                                num_batches=1, cfg_options=options)
    assert {'loss_cls', 'loss_bbox', 'loss_qi',
            'loss_obj_depth'} <= set(norms)
    for key, value in norms.items():
        assert value['grad_norm'] >= 0 and value['grad_norm'] < 1e6, key
    assert norms['loss_obj_depth']['grad_norm'] > 0
    with pytest.raises(ValueError, match='DepthDiscriminativeDetector'):
        loss_gradient_norms(str(BASELINE), None, data_root=str(tiny_root))
