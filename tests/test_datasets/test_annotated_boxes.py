"""Per-object annotated 2D boxes through a real mono3d training pipeline.

mmdet3d's ``KittiDataset`` on the real KITTI frames of ``../shared/data``
(infos from ddml's converter), with ``LoadAnnotatedBoxes2D`` ->
``RandomFlip3DKeepInstanceKeys`` -> ``RandomShiftScale`` ->
``AffineResizeKeepInstanceKeys`` -> ``Pack3DDetInputsWithDifficulty``: each
packed object must carry the label box of *that* object, flipped and mapped
into the network input as the image was, beside the projected box
mmdet3d's pipeline carries in ``gt_bboxes``.
"""
import random

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.registry import init_default_scope  # noqa: E402

from mmdet3d.registry import DATASETS, TRANSFORMS  # noqa: E402

import ddml  # noqa: E402,F401  (registration)

IMG_SCALE = (1280, 384)
DOWN_RATIO = 4
KEYS = ['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
        'gt_labels_3d', 'centers_2d', 'depths', 'gt_difficulty',
        'gt_bboxes_annotated']


def _pipeline(shift_scale: bool, flip: str = 'RandomFlip3DKeepInstanceKeys',
              **resize):
    pipe = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
             with_attr_label=False, with_bbox_3d=True, with_label_3d=True,
             with_bbox_depth=True),
        dict(type='LoadObjectDifficulty'),
        dict(type='LoadAnnotatedBoxes2D'),
        dict(type=flip, flip_ratio_bev_horizontal=0.5),
    ]
    if shift_scale:
        pipe.append(dict(type='RandomShiftScale', shift_scale=(0.2, 0.4),
                         aug_prob=1.0))
    pipe += [
        dict(type='AffineResizeKeepInstanceKeys', img_scale=IMG_SCALE,
             down_ratio=DOWN_RATIO, **resize),
        dict(type='Pack3DDetInputsWithDifficulty', keys=KEYS)
    ]
    return pipe


def _dataset(root, pipeline):
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


def _expected(box, meta):
    """The label box of the original image in network-input pixels: the
    flip of the image, then AffineResize's matrix (the packed
    ``trans_mat`` maps to the stride-4 output, so the input's is 4x it),
    corner by corner, unclipped."""
    box = np.array(box, np.float64)
    if meta['flip']:
        width = meta['ori_shape'][1]
        box = np.array([width - box[2], box[1], width - box[0], box[3]])
    mat = np.diag([DOWN_RATIO, DOWN_RATIO, 1.]) @ np.asarray(
        meta['trans_mat'], np.float64)
    corners = np.array([[box[0], box[1], 1.], [box[2], box[3], 1.]])
    return (corners @ mat.T)[:, :2].reshape(4)


def _run(dataset, repeats: int, seed: int = 0):
    """Packed samples of every frame, ``repeats`` times (random flips,
    shifts and scales), with the info of each frame."""
    random.seed(seed)
    np.random.seed(seed)
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)['instances']
        for _ in range(repeats):
            yield dataset[idx]['data_samples'], info


@pytest.mark.parametrize('shift_scale', [False, True])
def test_packed_annotated_box_is_that_of_the_same_object(real_kitti_root,
                                                         shift_scale):
    dataset = _dataset(real_kitti_root, _pipeline(shift_scale))
    flipped = dropped = outside = compared = differ = 0
    for sample, info in _run(dataset, repeats=6):
        gt3d, gt2d = sample.gt_instances_3d, sample.gt_instances
        boxes = gt2d.bboxes_annotated
        assert isinstance(boxes, torch.Tensor) and boxes.dtype == \
            torch.float32
        assert len(boxes) == len(gt3d.depths) == len(gt2d.bboxes) == \
            len(gt3d.difficulty)
        # every object's depth is unique in these frames and names it (the
        # packed depth is the info's in float32, exactly)
        lookup = {float(np.float32(i['depth'])): i for i in info}
        assert len(lookup) == len(info)
        dropped += len(info) - len(boxes)
        flipped += int(sample.metainfo['flip'])
        for depth, box, code, proj in zip(gt3d.depths.tolist(), boxes,
                                          gt3d.difficulty.tolist(),
                                          gt2d.bboxes, strict=True):
            inst = lookup[depth]
            want = _expected(inst['bbox_annotated'], sample.metainfo)
            np.testing.assert_allclose(box.numpy(), want, atol=0.02)
            assert code == inst['difficulty']
            # the projected box is carried beside it (they differ)
            differ += int(not torch.allclose(proj, box, atol=0.1))
            outside += int(bool((box[:2] < 0).any() or
                                box[2] > IMG_SCALE[0] - 1 or
                                box[3] > IMG_SCALE[1] - 1))
            compared += 1
    # the test means something: flips happened and, with random shifts
    # and scales, objects left the image and boxes reached beyond it (not
    # clipped, as the release)
    assert compared > 20 and flipped > 0 and differ > compared // 2
    if shift_scale:
        assert dropped > 0 and outside > 0


def test_clip_box_keys_clips_like_gt_bboxes(real_kitti_root):
    dataset = _dataset(real_kitti_root,
                       _pipeline(True, clip_box_keys=True))
    for sample, _ in _run(dataset, repeats=4):
        boxes = sample.gt_instances.bboxes_annotated
        assert bool((boxes >= 0).all())
        assert bool((boxes[:, [0, 2]] <= IMG_SCALE[0] - 1).all())
        assert bool((boxes[:, [1, 3]] <= IMG_SCALE[1] - 1).all())


def test_a_flip_that_leaves_the_boxes_is_refused(real_kitti_root):
    """With mmdet3d's own ``RandomFlip3D`` the annotated boxes would stay
    unflipped on a flipped image; ``AffineResizeKeepInstanceKeys`` stops
    at the first flipped frame with objects."""
    pipe = _pipeline(False, flip='RandomFlip3D')
    pipe[4]['flip_ratio_bev_horizontal'] = 1.0
    dataset = _dataset(real_kitti_root, pipe)
    with pytest.raises(ValueError, match='RandomFlip3DKeepInstanceKeys'):
        dataset.prepare_data(0)


def test_missing_boxes_name_the_converter():
    load = TRANSFORMS.build(dict(type='LoadAnnotatedBoxes2D'))
    results = dict(img_path='x/000001.png',
                   ann_info=dict(gt_bboxes_3d=np.zeros((2, 7))))
    with pytest.raises(KeyError, match='tools/create_data.py'):
        load(results)
    # a frame without objects needs none
    empty = load(dict(ann_info=dict(gt_bboxes_3d=np.zeros((0, 7)))))
    assert empty['gt_bboxes_annotated'].shape == (0, 4)
