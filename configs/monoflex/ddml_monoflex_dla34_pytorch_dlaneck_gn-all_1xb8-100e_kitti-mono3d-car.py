# MonoFlex + DDML on KITTI, Car only: quasi-isometric loss on object
# descriptors read from the DLA neck output (stride 4, 64 channels) and the
# object-wise depth-map head; both training-only, predict() is MonoFlex's.
# QI loss: the 'hinge' form at weight 1 (our reading of the paper's bounds
# d/K - B <= e <= K d + B, both violations penalised), not the release's
# 'official' softmax-like form (temperature 10, detached target, weight 0.5;
# minimising it pulls lower-bound violators closer): see ./ddml-release_*.
_base_ = [
    './monoflex_dla34_pytorch_dlaneck_gn-all_1xb8-100e_kitti-mono3d-car.py'
]

model = dict(
    _delete_=True,
    type='DepthDiscriminativeDetector',
    detector={{_base_.model}},
    feature_level=0,
    descriptor_pool=5,
    qi_loss=dict(type='QuasiIsometricLoss', K=1.5, B=0.5, eps=10.0,
                 mode='hinge', loss_weight=1.0),
    depth_map_head=dict(type='ObjectDepthMapHead', loss_weight=1.0))
