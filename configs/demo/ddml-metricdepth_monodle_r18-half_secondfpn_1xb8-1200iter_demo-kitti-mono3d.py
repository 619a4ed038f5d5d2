# The demo detector with MetricDepth's multi-range depth metric loss on the
# object descriptors (in place of the quasi-isometric loss), plus the
# object-wise depth-map head, to compare the two metric losses.
_base_ = ['./ddml_monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py']

model = dict(
    qi_loss=None,
    metric_loss=dict(
        type='MultiRangeDepthMetricLoss',
        pos_radius=0.25,
        neg_bounds=(0.5, 2.0, 8.0),
        margins=(1.0, 2.0, 4.0),
        loss_weight=1.0))
