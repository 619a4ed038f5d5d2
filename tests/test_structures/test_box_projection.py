"""project_boxes_to_image: the one corner -> 2D box projection."""
import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmdet3d.structures import CameraInstance3DBoxes  # noqa: E402

from ddml.data_tools import box3d_corners_camera  # noqa: E402
from ddml.structures import project_boxes_to_image  # noqa: E402

CAM2IMG = [[100., 0., 40., 0.], [0., 100., 20., 0.], [0., 0., 1., 0.],
           [0., 0., 0., 1.]]


def test_extent_of_projected_corners():
    # a 2 m cube 10 m ahead: bottom centre (0, 1, 10), so y in [-1, 1]
    boxes = CameraInstance3DBoxes(torch.tensor([[0., 1., 10., 2., 2., 2.,
                                                 0.]]))
    got = project_boxes_to_image(boxes, CAM2IMG)
    # nearest face at z = 9: x = +-1 -> u = 40 +- 100/9, v = 20 +- 100/9
    near = 100. / 9.
    expected = torch.tensor([[40. - near, 20. - near, 40. + near,
                              20. + near]])
    torch.testing.assert_close(got, expected)


def test_corners_array_equals_boxes_and_clipping():
    loc = np.array([[3., 1.6, 8.], [-2., 1.5, 30.]])
    lhw = np.array([[4., 1.5, 1.7], [0.8, 1.8, 0.6]])
    yaw = np.array([0.3, -1.2])
    corners = box3d_corners_camera(loc, lhw, yaw)
    boxes = CameraInstance3DBoxes(
        torch.tensor(np.concatenate([loc, lhw, yaw[:, None]], 1),
                     dtype=torch.float32))
    from_corners = project_boxes_to_image(corners, np.array(CAM2IMG))
    from_boxes = project_boxes_to_image(boxes, CAM2IMG)
    torch.testing.assert_close(from_corners, from_boxes, rtol=1e-5,
                               atol=1e-3)
    clipped = project_boxes_to_image(boxes, CAM2IMG, img_shape=(40, 80))
    assert from_boxes[0, 2] > 79  # the near car leaves the image ...
    assert clipped[0, 2] == 79  # ... and is clipped to the last pixel
    assert (clipped[:, 0::2] >= 0).all() and (clipped[:, 0::2] <= 79).all()
    assert (clipped[:, 1::2] >= 0).all() and (clipped[:, 1::2] <= 39).all()


def test_boxes_behind_the_camera():
    boxes = CameraInstance3DBoxes(
        torch.tensor([[0., 1., 0.5, 2., 2., 2., 0.],
                      [0., 1., 10., 2., 2., 2., 0.]]))
    marked = project_boxes_to_image(boxes, CAM2IMG)
    assert torch.isnan(marked[0]).all() and torch.isfinite(marked[1]).all()
    kept = project_boxes_to_image(boxes, CAM2IMG, behind='keep')
    assert torch.isfinite(kept).all()
    torch.testing.assert_close(kept[1], marked[1])
    with pytest.raises(ValueError, match="behind must be 'nan' or 'keep'"):
        project_boxes_to_image(boxes, CAM2IMG, behind='drop')


def test_empty_and_bad_shapes():
    assert project_boxes_to_image(torch.zeros(0, 8, 3),
                                  CAM2IMG).shape == (0, 4)
    with pytest.raises(ValueError, match=r'\(N, 8, 3\)'):
        project_boxes_to_image(torch.zeros(2, 4, 3), CAM2IMG)
