"""The package's entry points of training and testing
(``python -m ddml.engine.train`` / ``ddml.engine.test``), which
``tools/train.py`` and ``tools/test.py`` call."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize('module, option', [('ddml.engine.train', '--resume'),
                                            ('ddml.engine.test',
                                             '--show-dir')])
def test_python_m_runs_the_entry_point(module, option, tmp_path):
    proc = subprocess.run([sys.executable, '-m', module, '--help'],
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert option in proc.stdout  # mmdet3d's options
    # not imported twice (runpy warns when the package imported it)
    assert 'RuntimeWarning' not in proc.stderr, proc.stderr[-3000:]


def test_train_main_parses_argv(tmp_path, capsys):
    from ddml.engine.train import main
    with pytest.raises(SystemExit) as info:
        main(['--help'])
    assert info.value.code == 0
    assert '--auto-scale-lr' in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main([])  # the config is required
    assert info.value.code == 2
