# MonoDLE + DDML with the settings of the authors' release (Choi, Shin, Im,
# NeurIPS 2023; their code is built on MonoDLE's): the quasi-isometric loss
# in its released form (mode='official', temperature 10, weight 0.5, the
# second descriptor of a pair detached) with K=1.5, B=0.5, eps=10 m, and
# the object-wise depth-map head with weight 1. See the caveat of
# mode='official' in QuasiIsometricLoss's docstring.
# The release's sample rules: the auxiliary losses skip the images that
# RandomShiftScale shifted or scaled (skip_aux_on_affine_aug=True, read
# from the affine_aug mark of AffineResize). Its other rule, leaving out
# objects of no KITTI difficulty ('UnKnown'), is min_difficulty='hard',
# not set here: mmdet3d's mono3d pipeline does not load per-object
# difficulty (gt_instances_3d.difficulty).
_base_ = ['./ddml_monodle_dla34_dlaup_2xb8-140e_kitti-mono3d-car.py']

model = dict(
    qi_loss=dict(mode='official', temperature=10.0, detach_target=True,
                 loss_weight=0.5),
    depth_map_head=dict(loss_weight=1.0),
    skip_aux_on_affine_aug=True)
