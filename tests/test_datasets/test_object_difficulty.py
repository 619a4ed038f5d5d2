"""Per-object KITTI difficulty through a real mono3d training pipeline.

``LoadObjectDifficulty`` -> ``AffineResizeKeepInstanceKeys`` ->
``Pack3DDetInputsWithDifficulty`` (ddml.datasets.transforms) on synthetic
frames whose object centres lie up to 10 % of the width outside the image, so
that ``AffineResize`` drops objects: each packed object must carry the code
the converter wrote for *that* object.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.registry import init_default_scope  # noqa: E402

from mmdet3d.registry import DATASETS, TRANSFORMS  # noqa: E402

import ddml  # noqa: E402,F401  (registration)
from ddml.data_tools.synthetic_kitti import make_demo_dataset  # noqa: E402

NUM_FRAMES = 6
IMG_SCALE = (416, 128)


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> Path:
    """Six synthetic frames of the general layout (three classes, centres
    up to 10 % outside the image) with infos from ddml's converter."""
    out = tmp_path_factory.mktemp('difficulty')
    make_demo_dataset(out, NUM_FRAMES, 0, seed=5, scale=1 / 3, workers=1,
                      progress=False, convert=True)
    return out


def _pipeline(shift_scale: bool, resize: str):
    pipe = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
             with_attr_label=False, with_bbox_3d=True, with_label_3d=True,
             with_bbox_depth=True),
        dict(type='LoadObjectDifficulty'),
        dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    ]
    if shift_scale:
        pipe.append(dict(type='RandomShiftScale', shift_scale=(0.2, 0.4),
                         aug_prob=1.0))
    pipe += [
        dict(type=resize, img_scale=IMG_SCALE, down_ratio=4),
        dict(type='Pack3DDetInputsWithDifficulty',
             keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                   'gt_labels_3d', 'centers_2d', 'depths', 'gt_difficulty'])
    ]
    return pipe


def _dataset(root: Path, pipeline):
    init_default_scope('mmdet3d')
    return DATASETS.build(
        dict(type='KittiDataset', data_root=str(root),
             ann_file='kitti_infos_train.pkl',
             data_prefix=dict(img='training/image_2'),
             modality=dict(use_lidar=False, use_camera=True),
             load_type='fov_image_based', box_type_3d='Camera',
             metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
             pipeline=pipeline, test_mode=False,
             # dataset[idx] must be frame idx: with mmdet3d's default a
             # frame whose objects all left the image is replaced by a
             # random other frame
             filter_empty_gt=False))


def _info_codes(dataset, idx):
    """(depth, code) of every kept object of frame ``idx`` in its info."""
    raw = dataset.get_data_info(idx)
    return [(inst['depth'], inst['difficulty']) for inst in raw['instances']
            if inst['bbox_label_3d'] != -1]


@pytest.mark.parametrize('shift_scale', [False, True])
def test_packed_difficulty_is_that_of_the_same_object(root, shift_scale):
    dataset = _dataset(root, _pipeline(shift_scale,
                                       'AffineResizeKeepInstanceKeys'))
    dropped = 0
    seen = set()
    for idx in range(NUM_FRAMES):
        for repeat in range(3):  # random shift/scale/flip differ
            sample = dataset[idx]['data_samples']
            gt = sample.gt_instances_3d
            codes = gt.difficulty.tolist()
            assert len(codes) == len(gt.depths) == len(gt.bboxes_3d)
            # depths stay aligned with the boxes (z of a camera box; the
            # projected depth adds P2's 3 mm), so the lookup below pairs
            # each code with its box
            assert torch.allclose(gt.depths, gt.bboxes_3d.tensor[:, 2],
                                  atol=0.01)
            info = _info_codes(dataset, idx)
            dropped += len(info) - len(codes)
            # every packed object's depth is unique in its frame here and
            # names the object; its code must be the info's code of it
            lookup = {round(d, 4): c for d, c in info}
            assert len(lookup) == len(info)
            for depth, code in zip(gt.depths.tolist(), codes, strict=True):
                assert lookup[round(depth, 4)] == code
                seen.add(code)
    # the test means something: objects were dropped, codes vary
    assert dropped > 0
    assert len(seen) >= 2


def test_plain_affine_resize_would_misalign(root):
    """Control: with mmdet3d's own ``AffineResize`` the codes are not
    filtered, so on a frame where objects leave the image there are more
    codes than objects and packing them fails."""
    dataset = _dataset(root, _pipeline(False, 'AffineResize'))
    failed = 0
    for idx in range(NUM_FRAMES):
        try:
            dataset[idx]
        except AssertionError as err:
            assert 'length' in str(err)
            failed += 1
    assert failed > 0


def test_missing_difficulty_names_the_converter(root):
    load = TRANSFORMS.build(dict(type='LoadObjectDifficulty'))
    results = dict(img_path='x/000001.png',
                   ann_info=dict(gt_bboxes_3d=np.zeros((2, 7))))
    with pytest.raises(KeyError, match='tools/create_data.py'):
        load(results)
    # a frame without objects needs no codes
    empty = load(dict(ann_info=dict(gt_bboxes_3d=np.zeros((0, 7)))))
    assert empty['gt_difficulty'].shape == (0, )


def test_length_mismatch_is_refused():
    resize = TRANSFORMS.build(
        dict(type='AffineResizeKeepInstanceKeys', img_scale=IMG_SCALE,
             down_ratio=4))
    results = dict(img=np.zeros((125, 414, 3), np.uint8),
                   centers_2d=np.array([[10.0, 10.0], [20.0, 20.0]]),
                   depths=np.array([5.0, 6.0]),
                   gt_difficulty=np.array([0]))
    with pytest.raises(ValueError, match="'gt_difficulty' has 1 entries"):
        resize(results)
