"""The 2-65 m rule of MonoDLE's targets and DDML's object depth map.

MonoDLE's release leaves objects nearer than 2 m or farther than 65 m out
of every target (``kitti_dataset.py``: ``pos[-1] < 2`` and ``pos[-1] >
65`` skip the object; both ends kept). ``MonoDLEHead`` does it with
``min_depth``/``max_depth`` (defaults 2 and 65, both ends kept). DDML's
release paints its object depth map from ``z >= 2`` m without an upper
cap (``make_obj_depth.py``); ``ObjectDepthMapHead`` paints 2-65 m.

The first two tests need no release: they fail when either side of
``MonoDLEHead``'s or ``ObjectDepthMapHead``'s depth filter is deleted.
"""
from pathlib import Path
from typing import List

import numpy as np
import pytest

from ddml.testing import make_samples
from ddml.testing.reference import (RELEASE_FEAT_HW, RELEASE_RESOLUTION,
                                    kitti_label, mmdet3d_kitti_dataset,
                                    monodle_head_targets,
                                    parity_monodle_head, release_dataset,
                                    release_object_depth_targets,
                                    release_targets, write_kitti_root)

#: Object depths (m) around both ends of the range.
DEPTHS = (1.5, 1.99, 2.0, 2.01, 30.0, 64.99, 65.0, 65.01, 70.0)
#: Those in [2, 65].
IN_RANGE = (2.0, 2.01, 30.0, 64.99, 65.0)
#: A long focal length on the 1280x384 input, so that a Car at 70 m is
#: 43 px high: every object has a KITTI difficulty (the release drops the
#: others for that reason alone).
CAMERA = np.array([[2000., 0., 640., 0.], [0., 2000., 192., 0.],
                   [0., 0., 1., 0.]])
#: Car size (l, h, w); with yaw 0 its length lies along x, so even the
#: 1.5 m Car is in front of the camera.
CAR = (3.9, 1.5, 1.6)


def _objects() -> List[tuple]:
    """``(x, y_bottom, z, l, h, w, yaw, label)`` of one Car per depth,
    gravity centre on the optical axis's row, in its own columns."""
    objects = []
    for i, z in enumerate(DEPTHS):
        u = 200. + 100. * i
        x = (u - CAMERA[0, 2]) * z / CAMERA[0, 0]
        objects.append((x, CAR[1] / 2, z) + CAR + (0., 2))
    return objects


def _cam2img() -> list:
    cam2img = np.eye(4)
    cam2img[:3] = CAMERA
    return cam2img.tolist()


@pytest.mark.parametrize('min_depth,max_depth,kept', [
    (2., 65., IN_RANGE),
    (5., 40., (30.0, )),
    (1., 100., DEPTHS),
    (2.01, 64.99, (2.01, 30.0, 64.99)),
])
def test_monodle_head_keeps_min_to_max_depth(min_depth, max_depth, kept):
    """``MonoDLEHead.get_targets`` keeps exactly the objects with depth in
    ``[min_depth, max_depth]``, both ends included: no heatmap peak and no
    regression target for the others."""
    kwargs = {} if (min_depth, max_depth) == (2., 65.) else dict(
        min_depth=min_depth, max_depth=max_depth)
    head = parity_monodle_head(**kwargs)
    samples = make_samples([_objects()], _cam2img(),
                           RELEASE_RESOLUTION[::-1])
    targets = monodle_head_targets(head, samples)
    np.testing.assert_allclose(sorted(targets['depth'].tolist()), kept,
                               rtol=1e-6)
    assert int((targets['heatmap'] == 1).sum()) == len(kept)


@pytest.mark.parametrize('min_depth,max_depth,painted', [
    (None, None, IN_RANGE),
    (5., 40., (30.0, )),
    (1., 100., DEPTHS),
])
def test_object_depth_map_head_paints_min_to_max_depth(min_depth, max_depth,
                                                       painted):
    """``ObjectDepthMapHead.get_targets`` paints exactly the objects with
    depth in ``[min_depth, max_depth]`` (defaults 2 and 65 m), both ends
    included (one object a sample, so that none hides another)."""
    from mmdet3d.registry import MODELS
    cfg = dict(type='ObjectDepthMapHead', in_channels=1)
    if min_depth is not None:
        cfg.update(min_depth=min_depth, max_depth=max_depth)
    head = MODELS.build(cfg)
    samples = make_samples([[o] for o in _objects()], _cam2img(),
                           RELEASE_RESOLUTION[::-1])
    maps = head.get_targets(samples, RELEASE_FEAT_HW, (4., 4.))
    drawn = [z for z, m in zip(DEPTHS, maps) if bool((m > 0).any())]
    assert drawn == list(painted)
    for z, m in zip(DEPTHS, maps):
        values = m[m > 0]
        assert values.numel() == 0 or float(
            (values - z).abs().max()) < 1e-5 * z


@pytest.fixture(scope='module')
def one_car_per_frame(tmp_path_factory, monodle_release) -> Path:
    """A KITTI root (1280x384, :data:`CAMERA`) with one Car per depth of
    :data:`DEPTHS`, each in its own frame; every Car of known KITTI
    difficulty (truncation and occlusion 0, 2D box over 40 px)."""
    frames = [[kitti_label('Car', o[:3], o[3:6], o[6], P2=CAMERA,
                           image_size=RELEASE_RESOLUTION)]
              for o in _objects()]
    return write_kitti_root(tmp_path_factory.mktemp('parity_range'), frames,
                            CAMERA, RELEASE_RESOLUTION)


def test_monodle_depth_range_matches_the_release(one_car_per_frame):
    """The release's encoding and ``MonoDLEHead``'s keep the same
    objects: 2 to 65 m, both ends included."""
    root = one_car_per_frame
    dataset = release_dataset(root)
    released = [z for i, z in enumerate(DEPTHS)
                if release_targets(dataset, i)['mask_2d'].any()]
    head = parity_monodle_head()
    ours_data = mmdet3d_kitti_dataset(root)
    ours = [
        z for i, z in enumerate(DEPTHS) if len(
            monodle_head_targets(head,
                                 [ours_data[i]['data_samples']])['depth'])
    ]
    assert released == list(IN_RANGE)
    assert ours == released


def test_object_depth_map_range_against_the_release(
        one_car_per_frame, ddml_release, tmp_path):
    """DDML's release paints objects from 2 m with no upper cap; by
    design ``ObjectDepthMapHead`` also stops at 65 m (the range of its
    MonoDLE targets and descriptors). Measured: the release paints the
    Cars at 65.01 and 70 m, ddml does not; both leave out 1.5 and 1.99 m.
    """
    from mmdet3d.registry import MODELS
    root = one_car_per_frame
    ids = [f'{i:06d}' for i in range(len(DEPTHS))]
    released = release_object_depth_targets(root, ids, tmp_path)
    head = MODELS.build(dict(type='ObjectDepthMapHead', in_channels=1))
    data = mmdet3d_kitti_dataset(root)
    ours = head.get_targets(
        [data[i]['data_samples'] for i in range(len(ids))], RELEASE_FEAT_HW,
        (4., 4.))
    painted_release = [z for z, m in zip(DEPTHS, released) if m.max() > 0]
    painted_ours = [z for z, m in zip(DEPTHS, ours) if float(m.max()) > 0]
    assert painted_release == list(IN_RANGE) + [65.01, 70.0]
    assert painted_ours == list(IN_RANGE)
