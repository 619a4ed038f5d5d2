# MonoDLE + DDML with this add-on's defaults: the hinge quasi-isometric loss
# on object descriptors read from the DLA neck output (stride 4, 64
# channels) and the object-wise depth-map head, both training-only;
# predict() is MonoDLE's.
_base_ = ['./monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py']

model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    qi_loss=dict(type='QuasiIsometricLoss', K=1.5, B=0.5, eps=10.0,
                 mode='hinge', loss_weight=1.0),
    depth_map_head=dict(type='ObjectDepthMapHead', loss_weight=1.0))
