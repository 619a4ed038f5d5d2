# The demo detector: MonoDLE's head (ddml's MonoDLEHead: centre heatmap,
# regressed 2D box, depth with aleatoric uncertainty, 3D offset, size and
# 12-bin heading) on a half-width ResNet-18 with mmdet3d's SECONDFPN neck
# (stride 4, 64 channels, no deformable convolutions), Car only, 416x128
# input, for the synthetic data of tools/make_demo_dataset.py --layout demo
# (rendered at 1/3 of KITTI's resolution). It trains on one CPU core in
# minutes; the learning curve behind the schedule is in docs/benchmarks.md.
_base_ = ['../monodle/monodle_dla34_dlaup_2xb8-140e_kitti-mono3d-car.py']

data_root = 'data/demo_kitti/'
img_scale = (416, 128)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    # upsample the four stages to stride 4 and concatenate: 4 x 16 = 64
    neck=dict(
        _delete_=True,
        type='SECONDFPN',
        in_channels=[32, 64, 128, 256],
        out_channels=[16, 16, 16, 16],
        upsample_strides=[1, 2, 4, 8],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    bbox_head=dict(in_channels=64, feat_channels=32))

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
    dict(type='AffineResize', img_scale=img_scale, down_ratio=4),
    dict(
        type='Pack3DDetInputs',
        keys=[
            'img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
            'gt_labels_3d', 'centers_2d', 'depths'
        ]),
]
test_pipeline = [
    dict(type='LoadImageFromFileMono3D'),
    dict(type='AffineResize', img_scale=img_scale, down_ratio=4),
    dict(type='Pack3DDetInputs', keys=['img'])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='KittiMetric', ann_file=data_root + 'kitti_infos_val.pkl'),
    dict(type='CentreDistanceMetric',
         ann_file=data_root + 'kitti_infos_val.pkl')
]
test_evaluator = val_evaluator

max_iters = 1000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=max_iters // 2,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
