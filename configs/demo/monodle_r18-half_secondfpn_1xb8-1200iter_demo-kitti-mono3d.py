# The demo detector: the light SMOKE of ./smoke_r18-half_*.py (half-width
# ResNet-18 + SECONDFPN, stride 4, 64 channels, 416x128 input, the same data
# and schedule) with MonoDLE's head in place of SMOKE's (ddml's MonoDLEHead,
# as in configs/monodle/: centre heatmap, regressed 2D box, depth with
# aleatoric uncertainty, 3D offset, size and 12-bin heading), Car only, for
# the data of tools/make_demo_dataset.py --layout demo. It learns far faster
# than SMOKE on 2 CPU cores (docs/benchmarks.md, "Demo"). Four choices
# differ from MonoDLE, each from the demo's learning curves: 16 channels per
# branch (the seven branches were 44 % of the FLOPs at 32), the heading
# bins code rotation_y instead of the observation angle (most demo Cars
# follow the road, so one target serves them all), the regressed 2D boxes
# are scored by their heatmap peak (test_cfg.score_2d), and Adam at 2e-3
# for 1,200 iterations (x0.1 at 80 %).
_base_ = ['./smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py']

class_names = ['Car']
metainfo = dict(classes=class_names)
model = dict(
    type='MonoDLE',
    bbox_head=dict(
        _delete_=True,
        type='MonoDLEHead',
        num_classes=1,
        in_channels=64,
        feat_channels=16,
        # the release's mean Car size (l, h, w), configs/monodle/
        bbox_coder=dict(
            type='MonoDLECoder',
            mean_sizes=((3.52588311, 1.52563191, 1.62856739), ),
            num_heading_bins=12,
            heading_angle='yaw'),
        min_depth=2.0,
        max_depth=65.0,
        skip_3d_on_affine_aug=True),
    test_cfg=dict(
        _delete_=True,
        topk=50,
        local_maximum_kernel=3,
        score_thr=0.2,
        pred_2d=True,
        # the regressed 2D boxes are ranked by their heatmap peak alone
        # (MonoDLE multiplies in the depth confidence, which says nothing
        # about a 2D box: Car AP2D 45.8 -> 68.0 on the demo's val split)
        score_2d='heatmap'))

train_dataloader = dict(num_workers=1, dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader
# KITTI's AP and, beside it, centre-distance AP and depth error by range
val_evaluator = [
    {{_base_.val_evaluator}},
    dict(
        type='CentreDistanceMetric',
        ann_file={{_base_.val_evaluator.ann_file}})
]
test_evaluator = val_evaluator
# MonoDLE's weight decay (1e-5, none on biases) at the demo's learning rate
optim_wrapper = dict(
    optimizer=dict(lr=2e-3, weight_decay=1e-5),
    paramwise_cfg=dict(bias_decay_mult=0.))
max_iters = 1200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(interval=max_iters // 2))
