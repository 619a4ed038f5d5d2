# The MonoFlex demo detector with DDML as this add-on trains it by default:
# the quasi-isometric loss in its 'hinge' form (weight 1: penalise
# descriptor distances e outside d/K - B <= e <= K d + B) on object
# descriptors read from the SECONDFPN output, and the object-wise depth-map
# head (64 hidden channels, as the MonoDLE demo's); both training-only. The
# release's 'official' form (temperature 10, detached target, weight 0.5)
# is what configs/monoflex/ddml-release_*.py train.
_base_ = ['./monoflex_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py']

model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    qi_loss=dict(type='QuasiIsometricLoss', K=1.5, B=0.5, eps=10.0,
                 mode='hinge', loss_weight=1.0),
    depth_map_head=dict(
        type='ObjectDepthMapHead', feat_channels=64, loss_weight=1.0))
