# The Waymo demo detector with DDML as ./ddml_monodle_r18-half_*_demo-kitti
# -mono3d.py adds it: the quasi-isometric loss in its 'hinge' form (weight
# 1) on object descriptors read from the SECONDFPN output, and the
# object-wise depth-map head with 64 hidden channels; both training-only.
# The wrapper's depth range (which objects get a descriptor and are painted
# into the depth map) is the head's, 2-75 m (Waymo's label range).
_base_ = ['./monodle_r18-half_secondfpn_1xb8-1200iter_demo-waymo-mono3d.py']

model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    min_depth={{_base_.model.bbox_head.min_depth}},
    max_depth={{_base_.model.bbox_head.max_depth}},
    qi_loss=dict(type='QuasiIsometricLoss', K=1.5, B=0.5, eps=10.0,
                 mode='hinge', loss_weight=1.0),
    depth_map_head=dict(
        type='ObjectDepthMapHead', feat_channels=64, loss_weight=1.0))
