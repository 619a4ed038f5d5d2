# SMOKE + MetricDepth's multi-range depth metric loss, on the object
# descriptors (pairs of objects) and densely on the neck output paired by
# shift-and-pair sampling against the painted object depth map, plus the
# object-wise depth-map head. The margins and ranges are ddml's defaults;
# MetricDepth's own constants are not public.
_base_ = ['./smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py']

metric_loss = dict(
    type='MultiRangeDepthMetricLoss',
    pos_radius=0.25,
    neg_bounds=(0.5, 2.0, 8.0),
    margins=(1.0, 2.0, 4.0),
    loss_weight=1.0)
model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    qi_loss=None,
    metric_loss=metric_loss,
    dense_metric_loss=dict(
        metric_loss, unit_size=4, shifts=((-2, -1), ), cross_image=True),
    depth_map_head=dict(type='ObjectDepthMapHead', loss_weight=1.0))
