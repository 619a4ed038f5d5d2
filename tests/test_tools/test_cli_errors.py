"""Every command-line tool answers a user's mistake in one line.

A missing file or folder, a bad option or a bad value stops the tool with
exit status 2 and one line on stderr, ``<tool>.py: error: ...``, that names
the file, option or value and the fix, and no traceback
(:mod:`ddml.engine.cli`). ``run_demo.py`` and ``benchmark_efficacy.py``
check everything before they render or train: nothing is written into the
given ``--data-root`` or ``--work-dir``.

Each tool runs once or more as a subprocess; the tools that check their
values before importing torch or mmdet3d answer in well under a second
(:func:`test_value_mistakes_fail_before_heavy_imports`). Further mistakes
of the tools that import ddml first run in this process, where ddml is
imported once.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
DEMO_CONFIGS = sorted((REPO / 'configs' / 'demo').glob('*kitti*.py'))
CONFIG = DEMO_CONFIGS[0]


def run_tool(tool: str, *args,
             timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOLS / tool), *[str(a) for a in args]],
        cwd=str(REPO), capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS='1'))


def one_line(tool, stderr: str, *words: str) -> str:
    """The single stderr line of a mistake by ``tool`` (None: any program),
    naming ``words``."""
    assert 'Traceback' not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert ': error: ' in line, line
    assert tool is None or line.startswith(f'{tool}: error: '), line
    for word in words:
        assert str(word) in line, (word, line)
    return line


def assert_usage_error(proc, tool: str, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    return one_line(tool, proc.stderr, *words)


# ----------------------------------------------------------------------
# each tool as a subprocess
# ----------------------------------------------------------------------
def test_train_missing_config(tmp_path):
    missing = CONFIG.parent / (CONFIG.stem + 'x.py')
    proc = run_tool('train.py', missing.relative_to(REPO), '--work-dir',
                    tmp_path / 'w')
    assert_usage_error(proc, 'train.py', 'config', missing.name,
                       'did you mean', CONFIG.name)
    assert not (tmp_path / 'w').exists()


def test_test_missing_checkpoint(tmp_path):
    proc = run_tool('test.py', CONFIG, tmp_path / 'epoch_72.pth')
    assert_usage_error(proc, 'test.py', 'checkpoint', 'epoch_72.pth',
                       'no such file', 'give a checkpoint (.pth)')


@pytest.mark.parametrize('args, words', [
    (['--out', '{tmp}/d', '--num-train', '-3', '--num-val', '1'],
     ['--num-train', '-3', '>= 0']),
    (['--out', '{tmp}/d', '--num-train', '1', '--num-val', '1', '--scale',
      '0'], ['--scale', '> 0']),
    (['--num-train', '1', '--num-val', '1'], ['--out', 'required']),
    (['--out', '{tmp}/d', '--num-train', '0', '--num-val', '0'],
     ['--num-train', '--num-val', 'at least one frame']),
], ids=['negative-frames', 'zero-scale', 'no-out', 'no-frames'])
def test_make_demo_dataset(tmp_path, args, words):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = run_tool('make_demo_dataset.py', *args)
    assert_usage_error(proc, 'make_demo_dataset.py', *words)
    assert not (tmp_path / 'd').exists()


def test_create_data(tmp_path):
    proc = run_tool('create_data.py', 'kitti', '--root-path', tmp_path / 'k')
    assert_usage_error(proc, 'create_data.py', '--root-path', 'no such '
                       'folder', 'ImageSets/')
    (tmp_path / 'k' / 'training').mkdir(parents=True)
    proc = run_tool('create_data.py', 'kitti', '--root-path',
                    tmp_path / 'k' / 'training')
    assert_usage_error(proc, 'create_data.py', 'not a KITTI root')


@pytest.mark.parametrize('args, words', [
    (['--iters', '0'], ['--iters', '0', '>= 1']),
    (['--num-test', '-1'], ['--num-test', '-1', '>= 0']),
    (['--threads', 'two'], ['--threads', "'two'", 'whole number']),
    (['--methd', 'ddml'], ['--methd', 'did you mean --method?']),
    (['--method', 'foo'], ['--method', "'foo'", 'choose from']),
], ids=['iters-0', 'negative-test', 'threads-text', 'misspelt', 'method'])
def test_run_demo_values(tmp_path, args, words):
    data, work = tmp_path / 'data', tmp_path / 'work'
    proc = run_tool('run_demo.py', '--data-root', data, '--work-dir', work,
                    *args)
    assert_usage_error(proc, 'run_demo.py', *words)
    assert not data.exists() and not work.exists()


def test_run_demo_skip_data_without_infos(tmp_path):
    data, work = tmp_path / 'data', tmp_path / 'work'
    data.mkdir()
    proc = run_tool('run_demo.py', '--skip-data', '--data-root', data,
                    '--work-dir', work)
    assert_usage_error(proc, 'run_demo.py', '--data-root', str(data),
                       'kitti_infos_val.pkl', 'leave out --skip-data')
    assert list(data.iterdir()) == [] and not work.exists()


def test_benchmark_efficacy_iters_0(tmp_path):
    data, work = tmp_path / 'data', tmp_path / 'work'
    proc = run_tool('benchmark_efficacy.py', '--iters', '0', '--data-root',
                    data, '--work-dir', work)
    assert_usage_error(proc, 'benchmark_efficacy.py', '--iters', '>= 1')
    assert not data.exists() and not work.exists()


def test_diagnose_aux_losses(tmp_path):
    proc = run_tool('diagnose_aux_losses.py', '--interval', '0',
                    '--work-dir', tmp_path / 'w')
    assert_usage_error(proc, 'diagnose_aux_losses.py', '--interval', '>= 1')
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('args, words', [
    (['configs/nope.py'], ['config', 'configs/nope.py', 'no such file']),
    ([CONFIG, '{tmp}/x.pth'], ['checkpoint', 'x.pth', 'no such file']),
    ([CONFIG, '--K', '0.5'], ['--K', '0.5', '>= 1']),
    ([CONFIG, '--split', 'vall'], ['--split', "'vall'", 'choose from']),
], ids=['config', 'checkpoint', 'K', 'split'])
def test_analyze_descriptors(tmp_path, args, words):
    args = [str(a).format(tmp=tmp_path) for a in args]
    proc = run_tool('analyze_descriptors.py', *args)
    assert_usage_error(proc, 'analyze_descriptors.py', *words)


def test_export_baseline(tmp_path):
    proc = run_tool('export_baseline.py', tmp_path / 'ddml.pth',
                    tmp_path / 'out.pth')
    assert_usage_error(proc, 'export_baseline.py', 'ddml.pth',
                       'no such file')
    (tmp_path / 'ddml.pth').write_bytes(b'')
    proc = run_tool('export_baseline.py', tmp_path / 'ddml.pth',
                    tmp_path / 'no' / 'out.pth')
    assert_usage_error(proc, 'export_baseline.py', 'out.pth',
                       'does not exist', 'create it first')


def test_plot_learning_curve(tmp_path):
    proc = run_tool('plot_learning_curve.py', tmp_path / 'run', '--out',
                    tmp_path / 'c.png')
    assert_usage_error(proc, 'plot_learning_curve.py', 'run', 'no such '
                       'folder', '--work-dir')
    (tmp_path / 'run').mkdir()
    proc = run_tool('plot_learning_curve.py', tmp_path / 'run', '--out',
                    tmp_path / 'c.txt')
    assert_usage_error(proc, 'plot_learning_curve.py', '--out', '.txt',
                       '.png')


def test_benchmark_overhead(tmp_path):
    proc = run_tool('benchmark_overhead.py', '--iters', '0')
    assert_usage_error(proc, 'benchmark_overhead.py', '--iters', '>= 1')
    proc = run_tool('benchmark_overhead.py', '--config', tmp_path / 'b.py')
    assert_usage_error(proc, 'benchmark_overhead.py', '--config', 'b.py',
                       'no such file')
    proc = run_tool('benchmark_overhead.py', '--config',
                    'mmdet3d::smoke/nope.py')
    assert_usage_error(proc, 'benchmark_overhead.py', 'mmdet3d has no such '
                       'config')


def test_benchmark_qi_loss(tmp_path):
    proc = run_tool('benchmark_qi_loss.py', '--num', '1')
    assert_usage_error(proc, 'benchmark_qi_loss.py', '--num', '>= 2')
    proc = run_tool('benchmark_qi_loss.py', '--device', 'gpu')
    assert_usage_error(proc, 'benchmark_qi_loss.py', "'gpu'", "'cuda'")
    proc = run_tool('benchmark_qi_loss.py', '--json', tmp_path / 'no' / 'r')
    assert_usage_error(proc, 'benchmark_qi_loss.py', '--json', '.json')


def test_benchmark_kitti_eval():
    proc = run_tool('benchmark_kitti_eval.py', '--frames', '0')
    assert_usage_error(proc, 'benchmark_kitti_eval.py', '--frames', '>= 1')


def test_waymo_oracle_eval(tmp_path):
    """Runs here as in the oracle's environment, where ddml is not
    installed: the mistakes are found before TensorFlow is imported."""
    cases = tmp_path / 'cases.json'
    proc = run_tool('waymo_oracle_eval.py', cases, tmp_path / 'r.json')
    assert_usage_error(proc, 'waymo_oracle_eval.py', 'cases.json',
                       'no such file')
    cases.write_text('{"cases": [')
    proc = run_tool('waymo_oracle_eval.py', cases, tmp_path / 'r.json')
    assert_usage_error(proc, 'waymo_oracle_eval.py', 'not valid JSON')
    cases.write_text(json.dumps(dict(cases=[dict(name='a', frames=[])])))
    proc = run_tool('waymo_oracle_eval.py', cases, tmp_path / 'r.json')
    assert_usage_error(proc, 'waymo_oracle_eval.py', "case 0 has no "
                       "'config'")
    proc = run_tool('waymo_oracle_eval.py', cases)
    assert_usage_error(proc, 'waymo_oracle_eval.py', 'results', 'required')


def test_convert_release_checkpoint_out_is_a_folder(tmp_path):
    proc = run_tool('convert_release_checkpoint.py', tmp_path / 'r.pth',
                    tmp_path)
    assert_usage_error(proc, 'convert_release_checkpoint', str(tmp_path),
                       'is a folder')


@pytest.mark.parametrize('tool, args', [
    ('train.py', [CONFIG]),
    ('test.py', [CONFIG, 'x.pth']),
    ('infer.py', [CONFIG, 'x.pth', 'a.png', '--out-dir', 'out']),
    ('convert_release_checkpoint.py', ['r.pth', 'o.pth']),
    ('benchmark_efficacy.py', ['--help']),
    ('benchmark_monoflex_stability.py', ['--data', 'd', '--work-dir', 'w']),
])
def test_tools_run_by_a_python_without_the_stack(tool, args):
    """Run by an interpreter without ddml and its stack (here: no site
    packages, no PYTHONPATH), a tool says which package is missing for
    which Python and how to get it, in one line (no traceback)."""
    proc = subprocess.run(
        [sys.executable, '-E', '-S', str(TOOLS / tool),
         *[str(a) for a in args]], cwd=str(REPO), capture_output=True,
        text=True, timeout=60)
    line = assert_usage_error(proc, tool, 'is not installed for',
                              sys.executable, 'make install')
    assert line.split(': error: ')[1].split()[0] in (
        'ddml', 'torch', 'mmengine', 'mmcv', 'mmdet', 'mmdet3d'), line


def test_value_mistakes_fail_before_heavy_imports(tmp_path):
    """The tools that need no ddml to check a value answer before torch,
    mmdet3d or ddml's package is imported."""
    script = f"""
import runpy, sys
tools = {str(TOOLS)!r}
cases = [
    ('run_demo.py', ['--iters', '0']),
    ('make_demo_dataset.py', ['--out', 'x', '--num-train', '-1',
                              '--num-val', '1']),
    ('create_data.py', ['kitti', '--root-path', {str(tmp_path / 'k')!r}]),
    ('export_baseline.py', [{str(tmp_path / 'a.pth')!r}, 'b.pth']),
    ('analyze_descriptors.py', ['configs/nope.py']),
    ('benchmark_overhead.py', ['--iters', '0']),
    ('benchmark_qi_loss.py', ['--num', '1']),
    ('benchmark_kitti_eval.py', ['--frames', '0']),
    ('plot_learning_curve.py', ['nowhere', '--out', 'c.png']),
]
for tool, argv in cases:
    sys.argv = [tool] + argv
    try:
        runpy.run_path(tools + '/' + tool, run_name='__main__')
    except SystemExit as exit:
        assert exit.code == 2, (tool, exit.code)
    else:
        raise AssertionError(tool + ' did not stop')
    heavy = [m for m in ('torch', 'mmdet3d', 'mmengine', 'ddml')
             if m in sys.modules]
    assert not heavy, (tool, heavy)
print('ok')
"""
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(REPO),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'ok'
    assert 'Traceback' not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 9  # one line each


# ----------------------------------------------------------------------
# more mistakes, in this process
# ----------------------------------------------------------------------
def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _usage_error(capsys, main, argv, *words) -> str:
    from ddml.engine.cli import run
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run(main, [str(a) for a in argv], prog='tool.py')
    assert exc.value.code == 2
    return one_line(None, capsys.readouterr().err, *words)


@pytest.mark.parametrize('argv, words', [
    ([CONFIG, '--cfg-options', 'train_cfg.max_iters', '10'],
     ['--cfg-options', "'train_cfg.max_iters' is not key=value"]),
    ([CONFIG, '--resume', '{tmp}/nope.pth'], ['--resume', 'nope.pth']),
    (['{tmp}/iter_8.pth'], ['is a checkpoint, not a config']),
    ([CONFIG, '--work-dir', '{tmp}/file'], ['--work-dir', 'is a file']),
    ([CONFIG, '--lanucher', 'pytorch'], ['did you mean --launcher?']),
    ([CONFIG, '--launcher', 'pytorch'], ['--launcher pytorch',
                                          'tools/dist_train.sh']),
], ids=['cfg-options', 'resume', 'checkpoint-as-config', 'work-dir-file',
        'misspelt', 'launcher-without-torchrun'])
def test_train_mistakes(capsys, tmp_path, monkeypatch, argv, words):
    from ddml.engine.train import main
    monkeypatch.delenv('RANK', raising=False)
    (tmp_path / 'file').write_text('')
    argv = [str(a).format(tmp=tmp_path) for a in argv]
    _usage_error(capsys, main, argv, *words)


def test_test_mistakes(capsys, tmp_path):
    from ddml.engine.test import main
    ckpt = tmp_path / 'iter_8.pth'
    ckpt.write_bytes(b'')
    _usage_error(capsys, main, [ckpt, CONFIG], 'wrong way round',
                 'config first')
    _usage_error(capsys, main, [CONFIG, CONFIG], 'is a config, not a '
                 'checkpoint')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    _usage_error(capsys, main, [CONFIG, tmp_path / 'iter_12.pth'],
                 'iter_12.pth', 'did you mean', 'iter_8.pth')
    _usage_error(capsys, main, [CONFIG, tmp_path / 'epoch_1.pth'],
                 'epoch_1.pth', 'the latest checkpoint there is',
                 'iter_4.pth')
    _usage_error(capsys, main, [CONFIG, ckpt, '--score-thr', '2'],
                 '--score-thr', 'in [0, 1]')


def test_run_demo_mistakes(capsys, tmp_path, monkeypatch):
    mod = _tool('run_demo')
    monkeypatch.chdir(REPO)
    data, work = tmp_path / 'data', tmp_path / 'work'
    base = ['--data-root', data, '--work-dir', work]
    _usage_error(capsys, mod.main, base + ['--skip-train', '--iters', '7'],
                 '--skip-train', 'iter_7.pth', 'leave out --skip-train')
    _usage_error(capsys, mod.main, base + ['--eval-split', 'test',
                                           '--num-test', '0'],
                 '--eval-split test', '--num-test')
    (tmp_path / 'file').write_text('')
    _usage_error(capsys, mod.main, ['--data-root', data, '--work-dir',
                                    tmp_path / 'file'],
                 '--work-dir', 'is a file')
    data.mkdir()
    (data / 'ddml_demo_manifest.json').write_text('{"format": "waymo"}')
    _usage_error(capsys, mod.main, base, 'holds synthetic waymo data',
                 '--data-root')
    assert sorted(p.name for p in data.iterdir()) == [
        'ddml_demo_manifest.json']
    assert not work.exists()


def test_benchmark_efficacy_mistakes(capsys, tmp_path, monkeypatch):
    mod = _tool('benchmark_efficacy')
    monkeypatch.chdir(REPO)
    data, work = tmp_path / 'data', tmp_path / 'work'
    base = ['--data-root', data, '--work-dir', work]
    _usage_error(capsys, mod.main, base + ['--skip-data'], '--data-root',
                 'no such folder')
    _usage_error(capsys, mod.main, base + ['--seeds', '0', '1', '0'],
                 '--seeds', '0 given twice')
    _usage_error(capsys, mod.main, base + ['--eval-split', 'test',
                                           '--num-test', '0'],
                 '--eval-split test', '--num-test')
    _usage_error(capsys, mod.main, ['--protocol', 'docs/efficacy/'
                                    'protocl.json', '--work-dir', work],
                 '--protocol', 'did you mean docs/efficacy/protocol.json?')
    assert not data.exists() and not work.exists()


def test_diagnose_skip_train_without_runs(capsys, tmp_path):
    mod = _tool('diagnose_aux_losses')
    _usage_error(capsys, mod.main, ['--skip-train', '--variants', 'qi',
                                    '--work-dir', tmp_path / 'w',
                                    '--data-root', tmp_path / 'd'],
                 '--skip-train', 'no run of qi', 'leave out --skip-train')
    assert not (tmp_path / 'w').exists() and not (tmp_path / 'd').exists()


def test_analyze_descriptors_split_without_infos(capsys, tmp_path):
    mod = _tool('analyze_descriptors')
    (tmp_path / 'data').mkdir()
    _usage_error(capsys, mod.main, [CONFIG, '--data-root', tmp_path / 'data',
                                    '--out-dir', tmp_path / 'out'],
                 '--split val', 'kitti_infos_val.pkl', '--data-root')
    assert not (tmp_path / 'out').exists()


def test_export_baseline_of_a_plain_checkpoint(capsys, tmp_path):
    import torch
    mod = _tool('export_baseline')
    plain = tmp_path / 'plain.pth'
    torch.save(dict(state_dict={'backbone.w': torch.zeros(1)}), plain)
    _usage_error(capsys, mod.main, [plain, tmp_path / 'o.pth'], 'plain.pth',
                 "no key starts with 'detector.'", 'ddml_* config')
    _usage_error(capsys, mod.main, [plain, plain], 'is the checkpoint '
                 'itself')
    assert not (tmp_path / 'o.pth').exists()


def test_plot_learning_curve_without_validation(capsys, tmp_path):
    mod = _tool('plot_learning_curve')
    run = tmp_path / 'run'
    _usage_error(capsys, mod.main, [run, '--out', tmp_path / 'c.png'],
                 'no such folder')
    run.mkdir()
    _usage_error(capsys, mod.main, [run, '--out', tmp_path / 'c.png'],
                 'no <timestamp>/vis_data/scalars.json')
    (run / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (run / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps(dict(lr=0.1, step=1)) + '\n')
    _usage_error(capsys, mod.main, [run, '--out', tmp_path / 'c.png'],
                 'no validation figures', 'train_cfg.val_interval')
    assert not (tmp_path / 'c.png').exists()


def test_make_demo_dataset_testing_folder_without_num_test(capsys, tmp_path):
    mod = _tool('make_demo_dataset')
    (tmp_path / 'd' / 'testing').mkdir(parents=True)
    _usage_error(capsys, mod.main, ['--out', tmp_path / 'd', '--num-train',
                                    '1', '--num-val', '1', '--format',
                                    'waymo', '--no-progress'],
                 'testing', '--num-test')


# ----------------------------------------------------------------------
# ddml.engine.cli itself
# ----------------------------------------------------------------------
def test_loaded_without_ddml_is_the_package_module():
    """tools/_cli.py registers the package's module under its name: what
    the package raises later is what the tool catches."""
    script = f"""
import sys
sys.path.insert(0, {str(TOOLS)!r})
from _cli import cli
assert 'ddml' not in sys.modules and 'torch' not in sys.modules
from ddml.engine import launch
from ddml.analysis import runs
import ddml.engine.cli as again
assert again is cli and launch.BadValueError is cli.BadValueError
try:
    runs.check_data_root('/nonexistent/root', skip_data=True)
except cli.UsageError as err:
    print('caught', type(err).__name__)
"""
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(REPO),
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'caught MissingPathError'


def test_error_classes_keep_their_builtin_kinds():
    from ddml.engine import cli
    assert issubclass(cli.MissingPathError, FileNotFoundError)
    assert issubclass(cli.BadValueError, ValueError)
    assert issubclass(cli.SetupError, RuntimeError)
    from ddml.engine.release_checkpoint import ReleaseCheckpointError
    assert issubclass(ReleaseCheckpointError, cli.UsageError)


def test_value_types():
    import argparse

    from ddml.engine import cli
    assert cli.int_at_least(1)('3') == 3
    assert cli.float_above(0)('0.5') == 0.5
    assert cli.float_in(0, 1)('1') == 1.0
    for check, text, words in [
        (cli.int_at_least(1), '0', '>= 1'),
        (cli.int_at_least(0, 10), '11', '<= 10'),
        (cli.int_at_least(0), '1.5', 'not a whole number'),
        (cli.float_above(0), 'inf', 'not a finite number'),
        (cli.float_above(0), '0', '> 0'),
        (cli.float_above(1, inclusive=True), '0.9', '>= 1'),
        (cli.float_in(0, 1), '-0.1', 'in [0, 1]'),
    ]:
        with pytest.raises(argparse.ArgumentTypeError,
                           match=re.escape(words)):
            check(text)


def test_paths(tmp_path):
    from ddml.engine import cli
    (tmp_path / 'file').write_text('')
    assert cli.check_out_dir(str(tmp_path / 'new' / 'deeper'), '--w')
    with pytest.raises(cli.BadValueError, match='file is a file'):
        cli.check_out_dir(str(tmp_path / 'file' / 'sub'), '--w')
    with pytest.raises(cli.MissingPathError, match='is a folder'):
        cli.check_file(str(tmp_path), 'x', 'fix')
    with pytest.raises(cli.MissingPathError, match='is a file, not a '):
        cli.check_dir(str(tmp_path / 'file'), 'x', 'fix')
    assert cli.check_config(
        'mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py')
    with pytest.raises(cli.BadValueError, match='not a config file'):
        cli.check_config(str(tmp_path / 'file'))
    with pytest.raises(cli.BadValueError, match='no extension'):
        cli.check_out_file(str(tmp_path / 'fig'), '--out',
                           cli.FIGURE_SUFFIXES)
    with pytest.raises(cli.BadValueError, match="'qii' is not one of"):
        cli.check_names(['qi', 'qii'], ['qi', 'dmap'], '--variants')


def test_renamed_config_refused_with_its_new_name():
    """A config's old name (issue 23, item 4) stops tools/train.py in one
    line that names the new file, which exists; records under the old name
    compare equal to the new one."""
    from ddml.engine import cli
    old = ('configs/demo/'
           'ddml_monodle_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py')
    new = cli.current_config_name(old)
    assert new == old.replace('1xb8-1k', '1xb8-1200iter')
    assert (REPO / new).is_file() and not (REPO / old).exists()
    assert cli.current_config_name(new) == new
    for name, renamed in cli.RENAMED_CONFIGS.items():
        assert (REPO / 'configs' / 'demo' / renamed).is_file(), renamed
        assert not (REPO / 'configs' / 'demo' / name).exists(), name
    proc = run_tool('train.py', old)
    line = assert_usage_error(proc, 'train.py', old, new, 'renamed')
    assert '1,200 iterations' in line
