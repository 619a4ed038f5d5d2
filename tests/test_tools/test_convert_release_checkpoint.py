"""tools/convert_release_checkpoint.py: user mistakes stop with one line.

Each mistake (missing file, not a checkpoint, not a release checkpoint, an
mmengine checkpoint, a Car-only config given the release's 3-class
checkpoint, a DDML config given a checkpoint without ``obj_depth``, a
config decoding sizes differently, a missing config or output folder)
exits with status 2 and one line on stderr that names the file or key and
the fix, without a traceback. Small fake checkpoints stand in for the
release's (the mistakes are found before any weight is read); the
conversion itself is tested against the releases' code in
``tests/test_models/test_release_network.py``.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddml.engine.release_checkpoint import main

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs' / 'monodle'
CAR_CFG = CONFIGS / 'monodle_dla34_dlaup_2xb8-140e_kitti-mono3d-car.py'
MONODLE_CFG = CONFIGS / 'monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'
DDML_CFG = CONFIGS / \
    'ddml-release_monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'
DEMO_CFG = REPO / 'configs' / 'demo' / \
    'monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py'


def _fake_release(path: Path, heatmap_channels: int = 3,
                  obj_depth: bool = False) -> Path:
    """The keys the tool looks at first, with the release's shapes."""
    state = {
        'backbone.base_layer.0.weight': torch.zeros(16, 3, 7, 7),
        'neck.ida_0.proj_1.conv.weight': torch.zeros(256, 512, 3, 3),
        'heatmap.2.weight': torch.zeros(heatmap_channels, 256, 1, 1),
        'heatmap.2.bias': torch.zeros(heatmap_channels),
        'size_3d.2.weight': torch.zeros(3, 256, 1, 1),
    }
    if obj_depth:
        state['obj_depth.2.weight'] = torch.zeros(2, 256, 1, 1)
    torch.save({'epoch': 140, 'model_state': state,
                'optimizer_state': None}, str(path))
    return path


def _run(capsys, argv):
    """Run the tool in-process; its exit status and stderr lines."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    return exc.value.code, err.strip().splitlines()


def _one_line(lines, *words):
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith('convert_release_checkpoint: error: '), line
    assert 'Traceback' not in line
    for word in words:
        assert word in line, (word, line)
    return line


def test_missing_file(capsys, tmp_path):
    code, lines = _run(capsys, [tmp_path / 'nope.pth', tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'nope.pth', 'no such file')


def test_not_a_checkpoint(capsys, tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('not a checkpoint\n')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'notes.pth', 'not a torch checkpoint')


def test_not_a_release_checkpoint(capsys, tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'net': {'w': torch.zeros(1)}, 'iter': 3}, str(path))
    code, lines = _run(capsys, [path, tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'other.pth', "'model_state'")


def test_other_networks_state(capsys, tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'model_state': {'conv1.weight': torch.zeros(1)}},
               str(path))
    code, lines = _run(capsys, [path, tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'resnet.pth', "'backbone.base_layer.0.weight'",
              'not a MonoDLE/DDML release checkpoint')


def test_mmengine_checkpoint(capsys, tmp_path):
    path = tmp_path / 'epoch_140.pth'
    torch.save({'meta': {}, 'state_dict': {'w': torch.zeros(1)}}, str(path))
    code, lines = _run(capsys, [path, tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'epoch_140.pth', "'state_dict'", 'tools/test.py')


def test_car_config_given_the_3_class_checkpoint(capsys, tmp_path):
    path = _fake_release(tmp_path / 'car.pth')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth', '--config',
                                CAR_CFG])
    assert code == 2
    _one_line(lines, CAR_CFG.name, '1 heatmap channel', '3-class config',
              MONODLE_CFG.name)


def test_ddml_config_without_obj_depth(capsys, tmp_path):
    path = _fake_release(tmp_path / 'monodle.pth')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth', '--config',
                                DDML_CFG])
    assert code == 2
    _one_line(lines, 'monodle.pth', 'no obj_depth', MONODLE_CFG.name)


def test_unusual_heatmap(capsys, tmp_path):
    path = _fake_release(tmp_path / 'one.pth', heatmap_channels=1)
    code, lines = _run(capsys, [path, tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'one.pth', "'heatmap.2.weight'", '1 channels')


def test_meanshape_mismatch(capsys, tmp_path):
    path = _fake_release(tmp_path / 'r.pth')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth', '--meanshape'])
    assert code == 2
    _one_line(lines, MONODLE_CFG.name, 'bbox_head.bbox_coder.mean_sizes',
              'meanshape: True', 'drop --meanshape')


def test_incomplete_model_state(capsys, tmp_path):
    path = _fake_release(tmp_path / 'part.pth')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth'])
    assert code == 2
    _one_line(lines, 'part.pth', 'lacks', "'backbone.base_layer.1.weight'",
              'complete model_state')
    assert not (tmp_path / 'o.pth').exists()


def test_not_the_release_network(capsys, tmp_path):
    path = _fake_release(tmp_path / 'r.pth')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth', '--config',
                                DEMO_CFG])
    assert code == 2
    _one_line(lines, DEMO_CFG.name, 'MonoDLEDLAUp', MONODLE_CFG.name)


def test_missing_config_and_output_folder(capsys, tmp_path):
    path = _fake_release(tmp_path / 'r.pth')
    code, lines = _run(capsys, [path, tmp_path / 'o.pth', '--config',
                                tmp_path / 'none.py'])
    assert code == 2
    _one_line(lines, 'none.py', 'no such config')
    code, lines = _run(capsys, [path, tmp_path / 'no' / 'o.pth'])
    assert code == 2
    _one_line(lines, 'o.pth', 'does not exist', 'create it first')


def test_command_line_prints_one_line(tmp_path):
    """The script itself: status 2, one line on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'convert_release_checkpoint.py'),
         str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')],
        capture_output=True, text=True, cwd=str(REPO),
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if 'Warning' not in ln
             and not ln.startswith(' ')]
    _one_line(lines, 'missing.pth')
    assert not (tmp_path / 'out.pth').exists()
