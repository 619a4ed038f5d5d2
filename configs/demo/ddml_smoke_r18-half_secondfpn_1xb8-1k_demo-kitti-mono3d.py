# The light SMOKE (used by the tests and as a second demo detector) with
# DDML: the quasi-isometric loss in its 'hinge' form (weight 1) on object
# descriptors and the object-wise depth-map head, both training-only. The
# release's 'official' form is ./ddml-release_smoke_*.py.
_base_ = ['./smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py']

model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    qi_loss=dict(type='QuasiIsometricLoss', K=1.5, B=0.5, eps=10.0,
                 mode='hinge', loss_weight=1.0),
    depth_map_head=dict(type='ObjectDepthMapHead', loss_weight=1.0))
