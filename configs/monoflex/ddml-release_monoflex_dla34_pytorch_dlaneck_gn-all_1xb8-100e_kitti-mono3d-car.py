# MonoFlex + DDML on KITTI, Car only, with the loss settings of the authors'
# release on MonoDLE (mingyuShin/DDML-M3DOD): the quasi-isometric loss in its
# 'official' form (temperature 10, detached target, weight 0.5) and the
# object-wise depth-map head at weight 1. Compare with
# ./ddml_monoflex_dla34_pytorch_dlaneck_gn-all_1xb8-100e_kitti-mono3d-car.py,
# which trains the 'hinge' form (see configs/README.md).
# The release's sample rules (mingyuShin/DDML-M3DOD, c378da3): the
# auxiliary losses skip the images that RandomShiftScale shifted or scaled
# (skip_aux_on_affine_aug=True, read from the affine_aug mark of
# AffineResizeKeepTruncated; MonoFlex's pipeline only flips, so no image is
# skipped); and objects of no KITTI difficulty ('UnKnown') get no descriptor
# and no depth-map target (min_difficulty='hard'). The second rule needs
# each object's difficulty in gt_instances_3d: the training pipeline below
# is the base's with LoadObjectDifficulty and Pack3DDetInputsWithDifficulty
# (AffineResizeKeepTruncated keeps gt_difficulty aligned; info files from
# ddml's converter, tools/create_data.py, which writes the codes).
_base_ = [
    './ddml_monoflex_dla34_pytorch_dlaneck_gn-all_1xb8-100e_kitti-mono3d-car.py',  # noqa: E501
    '../_base_/ddml-release.py'
]

model = dict(
    qi_loss={{_base_.ddml_release_qi_loss}},
    depth_map_head={{_base_.ddml_release_depth_map_head}},
    skip_aux_on_affine_aug=True,
    min_difficulty='hard')

train_pipeline = [
    dict(type='LoadImageFromFileMono3D'),
    dict(
        type='LoadAnnotations3D',
        with_bbox=True,
        with_label=True,
        with_attr_label=False,
        with_bbox_3d=True,
        with_label_3d=True,
        with_bbox_depth=True),
    dict(type='LoadObjectDifficulty'),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(
        type='AffineResizeKeepTruncated', img_scale=(1280, 384),
        down_ratio=4),
    dict(
        type='Pack3DDetInputsWithDifficulty',
        keys=[
            'img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
            'gt_labels_3d', 'centers_2d', 'depths', 'gt_difficulty'
        ]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
