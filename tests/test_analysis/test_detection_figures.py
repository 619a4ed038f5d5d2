"""Figures of detections: drawn boxes land where the camera projects them,
binned depth errors, the gallery and the depth-error plot files."""
import numpy as np
import pytest
import torch

from ddml.analysis.detection_figures import (GT_COLOUR, MODEL_COLOURS,
                                             _draw_bev_panel,
                                             _draw_image_panel, _visualizer,
                                             binned_depth_errors,
                                             detection_gallery,
                                             plot_depth_error_vs_distance)

P2 = np.array([[240.5, 0., 203.2], [0., 240.5, 57.6], [0., 0., 1.]])


def _boxes(rows):
    from mmdet3d.structures import CameraInstance3DBoxes
    return CameraInstance3DBoxes(torch.tensor(rows, dtype=torch.float32))


def _is_colour(pixels, rgb, tol=40):
    return (np.abs(pixels.astype(int) - np.array(rgb)) <= tol).all(-1)


def test_binned_depth_errors_by_hand():
    z_gt = np.array([5., 15., 15., 25., 45., 70.])
    z_pred = np.array([6., 13., 15.5, 25., 40., 70.])
    b = binned_depth_errors(z_gt, z_pred, [0, 10, 20, 40, 60])
    np.testing.assert_array_equal(b['count'], [1, 2, 1, 1])  # 70 m: out
    np.testing.assert_allclose(b['mean'], [1., 1.25, 0., 5.])
    np.testing.assert_allclose(b['median'], [1., 1.25, 0., 5.])
    np.testing.assert_allclose(b['centre'], [5, 15, 30, 50])
    empty = binned_depth_errors(z_gt[:1], z_pred[:1], [0, 10, 20])
    assert empty['count'].tolist() == [1, 0] and np.isnan(empty['mean'][1])
    with pytest.raises(ValueError, match='increasing'):
        binned_depth_errors(z_gt, z_pred, [0, 10, 10])


def test_image_panel_draws_the_projected_box():
    image = np.full((125, 414, 3), 128, np.uint8)
    # a car 10 m ahead, bottom centre on the ground 1.65 m below the camera
    gt = _boxes([[0., 1.65, 10., 3.9, 1.56, 1.6, np.pi / 2]])
    vis = _visualizer()
    out = _draw_image_panel(vis, image, P2, [(gt, GT_COLOUR)])
    assert out.shape == image.shape
    corners = gt.corners[0].numpy()
    uv = corners @ P2.T
    uv = uv[:, :2] / uv[:, 2:]
    x0, y0 = np.floor(uv.min(0)).astype(int)
    x1, y1 = np.ceil(uv.max(0)).astype(int)
    green = _is_colour(out, GT_COLOUR)
    inside = green[max(y0 - 2, 0):y1 + 3, max(x0 - 2, 0):x1 + 3].sum()
    assert inside > 50, 'the box edges are drawn in the GT colour'
    assert green.sum() - inside < 5, 'nothing is drawn away from the box'
    # an empty set of boxes leaves the image as it is
    same = _draw_image_panel(vis, image, P2, [(gt[:0], GT_COLOUR)])
    assert (np.abs(same.astype(int) - 128) <= 1).all()


def test_bev_panel_puts_a_far_box_higher_up():
    vis = _visualizer()
    near = _draw_bev_panel(vis, [(_boxes([[0., 1.65, 10., 3.9, 1.56, 1.6,
                                           0.]]), MODEL_COLOURS[0])],
                           max_depth=60, px_per_m=5)
    far = _draw_bev_panel(vis, [(_boxes([[0., 1.65, 40., 3.9, 1.56, 1.6,
                                          0.]]), MODEL_COLOURS[0])],
                          max_depth=60, px_per_m=5)
    rows_near = np.nonzero(_is_colour(near, MODEL_COLOURS[0]).any(1))[0]
    rows_far = np.nonzero(_is_colour(far, MODEL_COLOURS[0]).any(1))[0]
    assert rows_near.size and rows_far.size
    # image rows grow downwards: the far box is drawn above the near one
    assert rows_far.mean() < rows_near.mean() - 60


def test_gallery_and_depth_plot_files(tmp_path):
    from PIL import Image
    image = np.full((125, 414, 3), 90, np.uint8)
    gt = _boxes([[0., 1.65, 10., 3.9, 1.56, 1.6, np.pi / 2],
                 [4., 1.65, 25., 3.9, 1.56, 1.6, 0.3]])
    pred = _boxes([[0.2, 1.65, 10.8, 3.9, 1.56, 1.6, np.pi / 2],
                   [-30., 1.65, 5., 3.9, 1.56, 1.6, 0.]])
    frames = [dict(image=image, cam2img=P2, gt=gt, title='frame 000001',
                   preds=dict(baseline=(pred, np.array([0.9, 0.1])),
                              ddml=(gt, np.array([0.8, 0.7]))))] * 2
    path = detection_gallery(frames, ['baseline', 'ddml'],
                             str(tmp_path / 'g.png'))
    w, h = Image.open(path).size
    assert w > 800 and h > 300
    with pytest.raises(ValueError, match='at most'):
        detection_gallery(frames, ['a', 'b', 'c', 'd', 'e'],
                          str(tmp_path / 'x.png'))
    plot = plot_depth_error_vs_distance(
        dict(baseline=(np.array([5., 25.]), np.array([6., 20.])),
             ddml=(np.array([5.]), np.array([5.5]))),
        str(tmp_path / 'd.png'))
    assert Image.open(plot).size[0] > 300
