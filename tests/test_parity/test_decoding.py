"""Decoding head outputs into boxes and scores: ddml against the release.

The same raw head outputs go through

* the release: ``extract_dets_from_outputs`` (3x3 max-pool NMS, top 50)
  and ``decode_detections`` (threshold 0.2 on the heatmap peak, score =
  peak x ``exp(-log_sigma)``) of xinzhuma/monodle's
  ``lib/helpers/decode_helper.py``, with its ``Calibration``;
* ddml: ``MonoDLEHead.predict_by_feat`` with the metas mmdet3d's
  ``AffineResize`` (1280x384, stride 4) gives a KITTI image.

Where the input image is the network input (1280x384) and the camera has
no translation column, the two decodings are the same function and the
results are equal. On KITTI's images and camera they differ by design in
three places, each measured: the release maps cells back to the image by
a scale per axis (``bbox_downsample_ratio``) where ``AffineResize`` kept
the aspect ratio (its inverse, which ddml applies, has a vertical offset);
its ``img_to_rect`` ignores ``P2[2, 3]`` when lifting the centre; and its
``alpha2ry`` turns the observation angle by the ray of the centre pixel,
not of the 3D centre (the two differ by the camera's ``P2[0, 3]``
baseline).
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from ddml.data_tools.synthetic_kitti import KITTI_P2
from ddml.models.heads.monodle_head import KITTI_MEAN_SIZES
from ddml.testing.reference import (CLASS_SWAP, RELEASE_CLASSES,
                                    RELEASE_FEAT_HW, RELEASE_RESOLUTION,
                                    parity_monodle_head)

#: ddml's (l, h, w) -> the release's (h, w, l).
LHW_TO_HWL = [1, 2, 0]
#: A camera for the 1280x384 input itself, without translations.
P2_PLAIN = np.array([[720., 0., 640.5, 0.], [0., 720., 190.2, 0.],
                     [0., 0., 1., 0.]])

#: (class in ddml's order, row, column, heatmap logit) of the peaks.
PEAKS = [(2, 40, 50, 3.0), (2, 45, 160, 2.0), (2, 50, 300, 1.2),
         (0, 60, 100, 0.5), (1, 30, 220, -0.4), (2, 5, 10, 1.0),
         (2, 90, 315, 0.8), (0, 48, 161, -2.0)]  # the last below 0.2


def _outputs(seed: int = 0) -> Dict[str, torch.Tensor]:
    """Raw head outputs with the peaks of :data:`PEAKS` and plausible
    regressions (float32, one image)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (1, ) + RELEASE_FEAT_HW

    def rand(channels: int, scale: float = 1.,
             shift: float = 0.) -> torch.Tensor:
        return torch.randn((1, channels) + RELEASE_FEAT_HW,
                           generator=gen) * scale + shift

    heatmap = torch.full((1, 3) + RELEASE_FEAT_HW, -8.)
    for cls, row, col, logit in PEAKS:
        heatmap[0, cls, row, col] = logit
    assert heatmap.shape[-2:] == shape[-2:]
    return dict(
        heatmap=heatmap,
        offset_2d=rand(2, 0.3, 0.5),
        size_2d=rand(2, 3., 20.).abs(),
        # raw depths o of 5-60 m (d = 1 / sigmoid(o) - 1: o = -log d)
        depth=torch.cat([
            -torch.empty((1, 1) + RELEASE_FEAT_HW).uniform_(
                np.log(5.), np.log(60.), generator=gen),
            rand(1, 0.5)
        ], 1),
        offset_3d=rand(2, 0.3, 0.5),
        size_3d=rand(3, 0.2, 1.6).abs(),
        heading=rand(24, 1.))


def _metas(P2: np.ndarray, image_size: Tuple[int, int]) -> dict:
    """The metas mmdet3d's pipeline gives an image of ``image_size``."""
    from mmdet3d.datasets.transforms import AffineResize
    from mmdet3d.structures import CameraInstance3DBoxes
    width, height = image_size
    results = AffineResize(img_scale=RELEASE_RESOLUTION, down_ratio=4)(
        dict(img=np.zeros((height, width, 3), np.uint8)))
    cam2img = np.eye(4)
    cam2img[:3] = P2
    return dict(cam2img=cam2img, trans_mat=results['trans_mat'],
                img_shape=results['img_shape'][:2],
                box_type_3d=CameraInstance3DBoxes)


def _release_decode(monodle_lib, outputs: Dict[str, torch.Tensor],
                    P2: np.ndarray, image_size: Tuple[int, int],
                    mean_sizes: Sequence) -> List[list]:
    """The release's detections: ``[cls, alpha, x1, y1, x2, y2, h, w, l,
    x, y, z, ry, score]`` each."""
    inputs = {k: v.clone() for k, v in outputs.items()}
    inputs['heatmap'] = inputs['heatmap'][:, CLASS_SWAP].contiguous()
    inputs['size_3d'] = inputs['size_3d'][:, LHW_TO_HWL].contiguous()
    dets = monodle_lib.decode.extract_dets_from_outputs(inputs, K=50)
    calib = monodle_lib.kitti_utils.Calibration(
        dict(P2=P2.astype(np.float32), R0=np.eye(3, dtype=np.float32),
             Tr_velo2cam=np.eye(4, dtype=np.float32)[:3]))
    feat_wh = np.array(RELEASE_FEAT_HW[::-1])
    info = dict(img_id=[0], img_size=[np.array(image_size)],
                bbox_downsample_ratio=[np.array(image_size) / feat_wh])
    means = np.asarray(mean_sizes, np.float32)[CLASS_SWAP][:, LHW_TO_HWL]
    results = monodle_lib.decode.decode_detections(
        dets.numpy(), info, [calib], means, threshold=0.2)
    return results[0]


def _both(monodle_lib,
          P2: np.ndarray,
          image_size: Tuple[int, int],
          mean_sizes: Sequence = ((0., 0., 0.), ) * 3) -> tuple:
    """(release detections sorted by score, ddml's 3D and 2D results in
    the same order)."""
    outputs = _outputs()
    rel = _release_decode(monodle_lib, outputs, P2, image_size, mean_sizes)
    head = parity_monodle_head(mean_sizes)
    res_3d, res_2d = head.predict_by_feat(
        *[outputs[k].clone() for k in ('heatmap', 'offset_2d', 'size_2d',
                                       'depth', 'offset_3d', 'size_3d',
                                       'heading')],
        batch_img_metas=[_metas(P2, image_size)])
    res_3d, res_2d = res_3d[0], res_2d[0]
    order = torch.argsort(res_3d.scores_3d, descending=True)
    rel = sorted(rel, key=lambda d: -d[-1])
    return (np.array(rel, np.float64), res_3d[order], res_2d[order])


def _compare_common(rel: np.ndarray, res_3d, res_2d) -> None:
    """What is equal in every setting: kept peaks, classes, scores,
    depths and sizes."""
    assert len(rel) == len(res_3d) == len(PEAKS) - 1
    labels = res_3d.labels_3d.numpy()
    assert [RELEASE_CLASSES[int(c)] for c in rel[:, 0]] == \
        [('Pedestrian', 'Cyclist', 'Car')[c] for c in labels]
    np.testing.assert_allclose(res_3d.scores_3d.numpy(), rel[:, 13],
                               rtol=1e-6)
    np.testing.assert_allclose(res_2d.scores.numpy(), rel[:, 13], rtol=1e-6)
    boxes = res_3d.bboxes_3d.tensor.numpy()
    np.testing.assert_allclose(boxes[:, 2], rel[:, 11], rtol=1e-6)
    np.testing.assert_allclose(boxes[:, 3:6], rel[:, [8, 6, 7]], rtol=1e-6)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


@pytest.mark.parametrize('means', ['zeros', 'kitti'])
def test_decoding_equals_the_release(monodle_lib, means):
    """On the 1280x384 input itself with a camera without translations,
    the release's and ddml's decodings are equal: the same peaks (7 of 8
    above 0.2; top-K over all classes), classes, scores (peak x depth
    confidence), 2D boxes, bottom centres, sizes (absolute, or residuals
    to the class means) and yaw."""
    mean_sizes = ((0., 0., 0.), ) * 3 if means == 'zeros' else \
        KITTI_MEAN_SIZES
    rel, res_3d, res_2d = _both(monodle_lib, P2_PLAIN, RELEASE_RESOLUTION,
                                mean_sizes)
    _compare_common(rel, res_3d, res_2d)
    boxes = res_3d.bboxes_3d.tensor.numpy()
    np.testing.assert_allclose(res_2d.bboxes.numpy(), rel[:, 2:6],
                               atol=2e-3)
    np.testing.assert_allclose(boxes[:, :3], rel[:, 9:12], atol=1e-4)
    assert np.abs(_wrap(boxes[:, 6] - rel[:, 12])).max() < 1e-5


def test_decoding_on_kitti_images_differs_by_design(monodle_lib):
    """On KITTI's 1242x375 images and camera, measured differences (all
    else equal, objects at 8-59 m):

    * 2D boxes: the release scales cells by 1242/320 and 375/96, ddml
      inverts ``AffineResize`` (1242/1280 on both axes, centres aligned):
      the same x, and y apart by ``0.025 * row - 1.2`` px (0 at the centre
      row, 1.2 px at the top and bottom rows; 1.30 px here, for a box
      reaching beyond the image);
    * bottom centres: that vertical gap moves the lifted centres by up to
      4.2 cm here (far objects); the release's ``img_to_rect`` also leaves
      out ``P2[2, 3]`` (2.7 mm), which moves x by ``u P2[2, 3] / f_u``
      (4.7 mm here);
    * yaw: the release's ``alpha2ry`` adds ``atan2(u - c_u, f_u)``, the
      ray of the centre pixel; ddml adds ``atan2(x, z)`` of the 3D centre,
      which the camera's baseline ``-P2[0, 3] / f_u`` (6.2 cm) shifts:
      up to 0.0041 rad here.
    """
    rel, res_3d, res_2d = _both(monodle_lib, KITTI_P2, (1242, 375))
    _compare_common(rel, res_3d, res_2d)
    boxes = res_3d.bboxes_3d.tensor.numpy().astype(np.float64)
    box_gap = np.abs(res_2d.bboxes.numpy() - rel[:, 2:6])
    assert box_gap[:, [0, 2]].max() < 2e-4
    assert box_gap.max() == pytest.approx(1.297, abs=0.002)
    # the y gap is the release's y scale, exactly
    y_ours = res_2d.bboxes.numpy()[:, [1, 3]]
    rows = (y_ours - 375 / 2) / (1242 / 1280 * 4) + RELEASE_FEAT_HW[0] / 2
    np.testing.assert_allclose(rel[:, [3, 5]], rows * 375 / 96, atol=2e-3)
    centre_gap = np.abs(boxes[:, :3] - rel[:, 9:12]).max(0)
    assert centre_gap[0] == pytest.approx(0.0047, abs=0.0002)
    assert centre_gap[1] == pytest.approx(0.042, abs=0.001)
    assert centre_gap[2] == 0
    # x: the release's lift leaves out u * P2[2, 3] / f_u
    gravity = boxes[:, :3] - np.stack(
        [np.zeros(len(boxes)), boxes[:, 4] / 2, np.zeros(len(boxes))], 1)
    hom = gravity @ KITTI_P2[:, :3].T + KITTI_P2[:, 3]
    u = hom[:, 0] / hom[:, 2]
    np.testing.assert_allclose(
        boxes[:, 0] - rel[:, 9], u * KITTI_P2[2, 3] / KITTI_P2[0, 0],
        atol=2e-5)
    # yaw: atan2(x, z) of ddml against the release's pixel ray
    t_x = -KITTI_P2[0, 3] / KITTI_P2[0, 0]
    z = boxes[:, 2]
    ray_gap = np.arctan2(boxes[:, 0], z) - np.arctan2(rel[:, 9] - t_x, z)
    yaw_gap = _wrap(boxes[:, 6] - rel[:, 12])
    np.testing.assert_allclose(yaw_gap, ray_gap, atol=2e-5)
    assert np.abs(yaw_gap).max() == pytest.approx(0.0041, abs=0.0001)
