"""KittiDataset (fov_image_based) loads frames without any object.

Without ``ddml.compat.kitti_empty_frames``, mmdet3d 1.4 raises
``IndexError: too many indices for array: array is 0-dimensional`` while
parsing such a frame.
"""
import numpy as np
from mmengine.fileio import dump, load

import ddml  # noqa: F401  (applies the fix)


def _dataset(root, ann_file, test_mode):
    from mmdet3d.datasets import KittiDataset
    return KittiDataset(
        data_root=str(root),
        ann_file=str(ann_file),
        data_prefix=dict(img='training/image_2'),
        pipeline=[],
        modality=dict(use_lidar=False, use_camera=True),
        load_type='fov_image_based',
        box_type_3d='Camera',
        metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
        test_mode=test_mode)


def test_frame_without_objects_loads(tiny_kitti_root, tmp_path):
    from ddml.data_tools import create_kitti_infos
    create_kitti_infos(tiny_kitti_root, progress=False)
    infos = load(str(tiny_kitti_root / 'kitti_infos_train.pkl'))
    assert len(infos['data_list']) == 2
    infos['data_list'][0]['cam_instances']['CAM2'] = []  # no object
    ann = tmp_path / 'infos_with_empty_frame.pkl'
    dump(infos, str(ann))

    val = _dataset(tiny_kitti_root, ann, test_mode=True)
    assert len(val) == 2  # the empty frame is kept for evaluation
    empty = val.get_data_info(0)['eval_ann_info']
    assert empty['gt_bboxes_labels'].shape == (0, )
    assert empty['gt_bboxes'].shape == (0, 4)
    assert len(empty['gt_bboxes_3d']) == 0
    other = val.get_data_info(1)['eval_ann_info']
    assert len(other['gt_labels_3d']) == len(other['gt_bboxes_labels']) > 0

    # training parses it too (filter_empty_gt skips it when sampling)
    train = _dataset(tiny_kitti_root, ann, test_mode=False)
    assert train.filter_empty_gt
    assert train.get_data_info(0)['ann_info']['gt_labels_3d'].shape == (0, )
    assert np.all(train.get_data_info(1)['ann_info']['gt_labels_3d'] >= 0)
