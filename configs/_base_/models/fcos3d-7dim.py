# mmdet3d's FCOS3D model for the 7-dim boxes (x, y, z, l, h, w, yaw) of KITTI
# and Waymo: 3 classes, no velocity, no attributes; caffe ResNet-101 with
# deformable convolutions in stages 3 and 4, as mmdet3d's nuScenes FCOS3D.
_base_ = ['mmdet3d::_base_/models/fcos3d.py']

model = dict(
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[103.530, 116.280, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, False, True, True)),
    bbox_head=dict(
        num_classes=3,
        bbox_code_size=7,
        pred_attrs=False,
        pred_velo=False,
        group_reg_dims=(2, 1, 3, 1),  # offset, depth, size, rot
        reg_branch=(
            (256, ),  # offset
            (256, ),  # depth
            (256, ),  # size
            (256, )  # rot
        ),
        bbox_coder=dict(type='FCOS3DBBoxCoder', code_size=7)),
    train_cfg=dict(code_weight=[1.0, 1.0, 0.2, 1.0, 1.0, 1.0, 1.0]),
    test_cfg=dict(nms_pre=100, nms_thr=0.05, score_thr=0.001, max_per_img=20))
