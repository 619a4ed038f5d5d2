"""ddml.benchmarks.monoflex_stability (tools/benchmark_monoflex_stability.py):
its runner and its keypoint check, at a tiny size."""
import math

from ddml.benchmarks.monoflex_stability import (keypoint_depth_check,
                                                summarise, train_run)


def test_stability_script_runs(synthetic_kitti_root, tmp_path):
    """Three iterations of the fixed head through the script's runner:
    every loss and gradient norm finite."""
    run = train_run('fixed', synthetic_kitti_root, tmp_path, iters=3,
                    batch_size=2)
    summary = summarise(run)
    assert summary['iters'] == 3 and summary['nonfinite'] == 0, summary
    assert summary['crash'] is None, summary
    assert math.isfinite(summary['grad_max']), summary
    assert summary['objects'] > 0 and math.isfinite(summary['depth_mae'])


def test_keypoint_check_runs(synthetic_kitti_root):
    """Exact keypoint targets give the depth through the fixed coder
    (within 5 cm up to 60 m: the coder adds 1e-3 cell to every height)
    and not through mmdet3d's (its centre estimate is the 100 m clamp)."""
    out = keypoint_depth_check(synthetic_kitti_root, num=4)
    assert out['objects'] > 0
    assert max(out['fixed']['max_m']) < 0.05, out
    assert out['upstream']['median_m'][0] > 50, out


def test_tool_checks_its_options_and_the_module_variants(tmp_path):
    """A bad option is one line (exit 2, no traceback); a variant name not
    in the module's ``VARIANTS`` is refused before any rendering, naming
    them (the tool keeps no list of its own)."""
    import subprocess
    import sys
    from pathlib import Path

    from ddml.benchmarks import monoflex_stability
    tool = Path(__file__).resolve().parents[2] / 'tools' / \
        'benchmark_monoflex_stability.py'
    (tmp_path / 'file').write_text('x')
    proc = subprocess.run(
        [sys.executable, str(tool), '--data', str(tmp_path / 'file'),
         '--work-dir', str(tmp_path / 'w')], capture_output=True, text=True)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert '--data' in proc.stderr and 'is a file' in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(tool), '--data', str(tmp_path / 'data'),
         '--work-dir', str(tmp_path / 'w'), '--variants', 'fixd'],
        capture_output=True, text=True)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert "'fixd'" in proc.stderr and "did you mean 'fixed'" in proc.stderr
    assert all(v in proc.stderr for v in monoflex_stability.VARIANTS)
    assert not (tmp_path / 'data').exists()  # refused before rendering
