# PGD + DDML on Waymo's front camera: descriptors from the first FPN level
# (stride 8, 256 channels).
_base_ = ['./pgd_r101_fpn_gn-head_dcn_8xb3-2x_waymoD3-fov-mono3d.py']

model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    qi_loss=dict(type='QuasiIsometricLoss', K=1.5, B=0.5, eps=10.0,
                 mode='hinge', loss_weight=1.0),
    depth_map_head=dict(type='ObjectDepthMapHead', loss_weight=1.0))
