"""Hand-made mmdet3d data samples for tests and benchmarks.

Objects are given as ``(x, y_bottom, z, l, h, w, yaw, label)`` tuples in
camera coordinates; each sample gets the 3D boxes, their projected gravity
centres and depths, and the 2D boxes around the projected corners (clamped
to the image), plus the meta information SMOKE, FCOS3D and PGD read.
"""
import numpy as np
import torch
from mmengine.structures import InstanceData

from mmdet3d.structures import (Box3DMode, CameraInstance3DBoxes,
                                Det3DDataSample, points_cam2img)
from ..structures import project_boxes_to_image

__all__ = ['make_samples', 'make_box_depth_sample']


def make_samples(objects, cam2img, img_shape, code_size=7, stride=4):
    """Det3DDataSamples with 3D boxes, projected centres and 2D boxes.

    Args:
        objects: one list of object tuples per sample.
        cam2img: the 4x4 camera intrinsics (nested lists).
        img_shape: ``(H, W)`` of the (unpadded, unscaled) input.
        code_size: 7, or 9 for heads that regress velocities (zeros).
        stride: the output stride in ``trans_mat``.
    """
    h, w = img_shape
    samples = []
    for objs in objects:
        sample = Det3DDataSample()
        sample.set_metainfo(
            dict(
                cam2img=cam2img,
                trans_mat=np.diag([1. / stride, 1. / stride,
                                   1.]).astype(np.float32),
                affine_aug=False,
                img_shape=(h, w),
                pad_shape=(h, w),
                ori_shape=(h, w),
                batch_input_shape=(h, w),
                scale_factor=np.array([1., 1.], dtype=np.float32),
                box_type_3d=CameraInstance3DBoxes,
                box_mode_3d=Box3DMode.CAM))
        boxes = torch.tensor([o[:7] for o in objs],
                             dtype=torch.float32).reshape(-1, 7)
        if code_size == 9:
            boxes = torch.cat([boxes, torch.zeros(len(boxes), 2)], dim=1)
        boxes_3d = CameraInstance3DBoxes(boxes, box_dim=code_size)
        labels = torch.tensor([o[7] for o in objs], dtype=torch.long)
        intrinsics = torch.tensor(cam2img, dtype=torch.float32)
        centers = points_cam2img(boxes_3d.gravity_center, intrinsics)
        bboxes = project_boxes_to_image(
            boxes_3d, intrinsics, img_shape=(h, w), behind='keep')
        gt3d = InstanceData()
        gt3d.bboxes_3d = boxes_3d
        gt3d.labels_3d = labels
        gt3d.centers_2d = centers.reshape(-1, 2)
        gt3d.depths = boxes_3d.gravity_center[:, 2].clone()
        gt = InstanceData()
        gt.bboxes = bboxes.reshape(-1, 4)
        gt.labels = labels.clone()
        sample.gt_instances_3d = gt3d
        sample.gt_instances = gt
        samples.append(sample)
    return samples


def make_box_depth_sample(bboxes, depths, bboxes_3d=None, cam2img=None):
    """A Det3DDataSample with only 2D boxes and depths (and optionally 3D
    boxes and intrinsics): the ground truth the object depth map reads.

    Args:
        bboxes: ``(x1, y1, x2, y2)`` boxes in input pixels, (N, 4) nested
            lists (or empty).
        depths: the objects' depths in metres, N values (or another count
            to test the fallback to projected 3D boxes).
        bboxes_3d (:obj:`CameraInstance3DBoxes`, optional): 3D boxes.
        cam2img: intrinsics in the metainfo (nested lists), optional.

    Returns:
        :obj:`Det3DDataSample`: With ``gt_instances.bboxes`` and
        ``gt_instances_3d.depths`` (and ``bboxes_3d``).
    """
    sample = Det3DDataSample()
    if cam2img is not None:
        sample.set_metainfo(dict(cam2img=cam2img))
    gt = InstanceData()
    gt.bboxes = torch.tensor(bboxes, dtype=torch.float32).reshape(-1, 4)
    sample.gt_instances = gt
    gt3d = InstanceData()
    gt3d.depths = torch.tensor(depths, dtype=torch.float32)
    if bboxes_3d is not None:
        gt3d.bboxes_3d = bboxes_3d
    sample.gt_instances_3d = gt3d
    return sample
