"""tools/train.py trains, is killed between checkpoints, and resumes.

A run killed by SIGKILL after iteration 3 (checkpoints every 2 iterations)
resumes with ``--resume`` from ``iter_2.pth`` on torch >= 2.6 (weights_only
loading) and then produces the same losses, weights, optimizer and
scheduler state as a run that was never interrupted (CPU, same seed): every
weight, and the whole optimizer state (Adam's step, exp_avg and exp_avg_sq
of every parameter, every param_group setting).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddml.testing import write_train_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'demo'
MAX_ITERS = 6


def _write_config(path: Path, base: Path, data_root: Path, kill_at=None):
    hooks = (f"custom_hooks = [dict(type='KillAtIterHook', "
             f'iteration={kill_at})]\n'
             "custom_imports = dict(imports=['ddml', "
             "'ddml.testing.hooks'], allow_failed_imports=False)\n") \
        if kill_at else ''
    return write_train_config(path, data_root, max_iters=MAX_ITERS,
                              checkpoint_interval=2, seed=3, base=base,
                              max_keep_ckpts=-1, extra=hooks)


def _train(config: Path, work_dir: Path, *extra: str):
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(config),
         '--work-dir', str(work_dir), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600)


def _losses(work_dir: Path) -> dict:
    """{iteration: {loss name: value}} from every run in ``work_dir``."""
    out = {}
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec:
                out[rec['iter']] = {
                    k: v for k, v in rec.items() if k.startswith('loss')}
    return out


@pytest.mark.slow
def test_killed_run_resumes_with_identical_losses(synthetic_kitti_root,
                                                  tmp_path):
    base = DEMO / 'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'
    plain = _write_config(tmp_path / 'plain.py', base, synthetic_kitti_root)
    killed = _write_config(tmp_path / 'killed.py', base,
                           synthetic_kitti_root, kill_at=3)

    ref_dir, run_dir = tmp_path / 'uninterrupted', tmp_path / 'interrupted'
    ref = _train(plain, ref_dir)
    assert ref.returncode == 0, ref.stderr[-3000:]

    crash = _train(killed, run_dir)
    assert crash.returncode == -9, (crash.returncode, crash.stderr[-3000:])
    assert (run_dir / 'iter_2.pth').is_file()
    assert not (run_dir / 'iter_4.pth').exists()
    assert sorted(_losses(run_dir)) == [1, 2, 3]

    resumed = _train(plain, run_dir, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in log, log[-3000:]

    want, got = _losses(ref_dir), _losses(run_dir)
    assert sorted(want) == list(range(1, MAX_ITERS + 1))
    for it in range(3, MAX_ITERS + 1):
        assert set(got[it]) == set(want[it])
        assert 'loss_qi' in got[it] and 'loss_obj_depth' in got[it]
        for key, value in want[it].items():
            assert got[it][key] == pytest.approx(value, rel=1e-5, abs=1e-6), \
                (it, key)

    a = torch.load(ref_dir / f'iter_{MAX_ITERS}.pth', map_location='cpu')
    b = torch.load(run_dir / f'iter_{MAX_ITERS}.pth', map_location='cpu')
    assert a['meta']['iter'] == b['meta']['iter'] == MAX_ITERS
    assert_same_state(b['state_dict'], a['state_dict'], 'state_dict')
    # the whole optimizer state: every parameter's step, exp_avg and
    # exp_avg_sq (Adam), and every param_group setting
    states = a['optimizer']['state']
    assert len(states) > 10
    assert all({'step', 'exp_avg', 'exp_avg_sq'} <= set(s)
               for s in states.values())
    assert all(int(s['step']) == MAX_ITERS for s in states.values())
    assert_same_state(b['optimizer'], a['optimizer'], 'optimizer')
    assert a['param_schedulers'] == b['param_schedulers']


def assert_same_state(got, want, path: str) -> None:
    """``got`` has the keys, lengths and values of ``want``, recursively;
    tensors within 1e-5 relative (and 1e-6 of their largest entry, so
    that tiny second moments are compared at their own scale)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        assert set(got) == set(want), (path, set(got) ^ set(want))
        for key in want:
            assert_same_state(got[key], want[key], f'{path}/{key}')
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)), path
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_state(g, w, f'{path}[{i}]')
    elif isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), path
        scale = float(want.abs().max()) if want.numel() else 0.0
        torch.testing.assert_close(
            got, want, rtol=1e-5, atol=max(1e-6 * scale, 1e-12),
            msg=lambda m: f'{path}: {m}')
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), path
    else:
        assert got == want, (path, got, want)


def test_resume_from_missing_checkpoint_names_the_file(tmp_path):
    from ddml.engine import train_config, train_parser
    args = train_parser().parse_args([
        str(DEMO / 'smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'),
        '--resume', str(tmp_path / 'nope.pth')
    ])
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        train_config(args)


def test_train_config_applies_cli_options(tmp_path, monkeypatch):
    from ddml.engine import train_config, train_parser
    cfg_path = (DEMO /
                'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='train without --amp'):
            train_config(train_parser().parse_args([str(cfg_path), '--amp']))
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    args = train_parser().parse_args([
        str(cfg_path), '--work-dir', str(tmp_path), '--amp', '--resume',
        '--auto-scale-lr', '--cfg-options', 'train_cfg.max_iters=7',
        'model.qi_loss.K=2.0'
    ])
    cfg = train_config(args)
    assert cfg.work_dir == str(tmp_path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.train_cfg.max_iters == 7
    assert cfg.model.qi_loss.K == 2.0
    assert cfg.model.detector.type == 'SMOKEMono3D'
