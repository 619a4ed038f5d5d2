# MonoFlex's head on the demo detector: the light MonoDLE of
# ./monodle_r18-half_*.py (half-width ResNet-18 + SECONDFPN, stride 4, 64
# channels, 416x128 input, Car only, the same data, evaluators and schedule:
# Adam 2e-3 for 1,200 iterations of batch 8, x0.1 at 80 %) with
# ddml.compat.monoflex's FixedMonoFlexHead in place of MonoDLE's head (see
# configs/monoflex/ and docs/monoflex.md). Light like the rest: 16 channels
# per branch (MonoFlex: 256) with BatchNorm (16 channels leave GroupNorm
# nothing to group). MonoFlex's own choices are kept: keypoint depths,
# uncertainty-weighted depth, 4-bin MultiBin local yaw, edge fusion, the
# release's loss weights, and truncated objects trained at the border
# (AffineResizeKeepTruncated in place of AffineResize).
_base_ = ['./monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py']

model = dict(
    type='MonoFlex',
    bbox_head=dict(
        _delete_=True,
        type='FixedMonoFlexHead',
        num_classes=1,
        in_channels=64,
        cls_branch=(16, ),
        reg_branch=((16, ), (16, ), (16, ), (16, ), (16, ), (16, ), (16, ),
                    (16, )),
        norm_cfg=dict(type='BN', requires_grad=True),
        bbox_coder=dict(
            type='FixedMonoFlexCoder',
            # MonoFlex's Car prior (l, h, w, std_l, std_h, std_w)
            base_dims=((3.8840, 1.5261, 1.6286, 0.4259, 0.1367, 0.1022), ))),
    test_cfg=dict(
        _delete_=True,
        topk=50,
        local_maximum_kernel=3,
        score_thr=0.2,
        depth='soft',
        uncertainty_as_confidence=True,
        pred_2d=True,
        score_2d='heatmap'))

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
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='AffineResizeKeepTruncated', img_scale=(416, 128), down_ratio=4),
    dict(
        type='Pack3DDetInputs',
        keys=[
            'img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
            'gt_labels_3d', 'centers_2d', 'depths'
        ]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
