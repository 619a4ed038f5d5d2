# The demo detector with DDML exactly as the authors released it on MonoDLE
# (mingyuShin/DDML-M3DOD): the quasi-isometric loss in its 'official' form
# (temperature 10, detached target, weight 0.5) and the object-wise
# depth-map head at weight 1. Compare with ./ddml_*.py (the 'hinge' form).
_base_ = ['./ddml_monodle_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py']

model = dict(
    qi_loss=dict(mode='official', temperature=10.0, detach_target=True,
                 loss_weight=0.5),
    depth_map_head=dict(loss_weight=1.0))
