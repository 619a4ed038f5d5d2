"""Learning curves from mmengine's scalars.json."""
import json

import numpy as np
import pytest

from ddml.analysis.learning_curve import (CURVE_KEYS, curve_table,
                                          plot_learning_curves,
                                          read_val_curve)


def _write(path, val_every, n_iter, step_of_val):
    with open(path, 'w') as f:
        for it in range(10, n_iter + 1, 10):
            f.write(json.dumps(dict(lr=1e-3, loss=1.0, step=it)) + '\n')
            if it % val_every == 0:
                row = {key: it / 100 for key in CURVE_KEYS.values()}
                row['step'] = step_of_val(it)
                f.write(json.dumps(row) + '\n')


@pytest.mark.parametrize('step_of_val', [lambda it: 0, lambda it: it])
def test_read_val_curve_takes_the_iteration_of_the_last_training_line(
        tmp_path, step_of_val):
    path = tmp_path / 'scalars.json'
    _write(path, 50, 200, step_of_val)
    curve = read_val_curve(str(path))
    np.testing.assert_array_equal(curve['step'], [50, 100, 150, 200])
    np.testing.assert_allclose(curve['AP3D_mod_loose'], [.5, 1., 1.5, 2.])
    table = curve_table({'run': curve})
    lines = table.splitlines()[2:]  # header, separator
    assert [int(x.split('|')[2]) for x in lines] == [50, 100, 150, 200]
    png = plot_learning_curves({'run': curve}, str(tmp_path / 'c.png'))
    from PIL import Image
    assert Image.open(png).size[0] > 800


def test_read_val_curve_without_validation(tmp_path):
    path = tmp_path / 'scalars.json'
    _write(path, 10**6, 50, lambda it: it)
    with pytest.raises(ValueError, match='val_interval'):
        read_val_curve(str(path))
