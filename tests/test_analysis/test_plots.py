"""The training-curve figure: the detector's own loss is the total less
DDML's auxiliary losses, whatever the head names its losses."""
import numpy as np

from ddml.analysis.plots import detector_loss, plot_training_curves


def test_detector_loss_is_total_less_auxiliary():
    base = dict(loss=np.array([9.0, 7.0]), loss_heatmap=np.array([2.0, 1.5]))
    ddml = dict(loss=np.array([12.0, 9.5]), loss_qi=np.array([0.5, 0.4]),
                loss_obj_depth=np.array([2.5, np.nan]))
    np.testing.assert_allclose(detector_loss(base), [9.0, 7.0])
    # a step where an auxiliary loss was not logged counts it as 0
    np.testing.assert_allclose(detector_loss(ddml), [9.0, 9.1])
    assert detector_loss(dict(loss_qi=np.ones(2))) is None


def test_training_curves_of_a_monodle_pair(tmp_path):
    """MonoDLE's loss names (no loss_cls / loss_bbox) give a figure."""
    step = np.arange(20, 220, 20)
    base = dict(step=step, loss=np.linspace(20, 8, 10),
                loss_heatmap=np.linspace(2, 1, 10), lr=np.full(10, 2e-3))
    ddml = dict(step=step, loss=np.linspace(25, 10, 10),
                loss_qi=np.full(10, 0.5), loss_obj_depth=np.full(10, 1.5),
                lr=np.full(10, 2e-3))
    path = plot_training_curves(dict(baseline=base, ddml=ddml),
                                str(tmp_path / 'curves.png'))
    assert (tmp_path / 'curves.png').stat().st_size > 10_000 and path
