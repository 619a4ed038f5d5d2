# SMOKE + DDML on KITTI, Car only, with the loss settings of the authors'
# release on MonoDLE (mingyuShin/DDML-M3DOD): the quasi-isometric loss in its
# 'official' form (temperature 10, detached target, weight 0.5) and the
# object-wise depth-map head at weight 1. Compare with
# ./ddml_smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d-car.py, which
# trains the 'hinge' form (see configs/README.md).
# The release's sample rules: the auxiliary losses skip the images that
# RandomShiftScale shifted or scaled (skip_aux_on_affine_aug=True, read
# from the affine_aug mark of AffineResize). Its other rule, leaving out
# objects of no KITTI difficulty ('UnKnown'), is min_difficulty='hard',
# not set here: mmdet3d's mono3d pipeline does not load per-object
# difficulty (gt_instances_3d.difficulty).
_base_ = ['./ddml_smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d-car.py']

model = dict(
    qi_loss=dict(mode='official', temperature=10.0, detach_target=True,
                 loss_weight=0.5),
    depth_map_head=dict(loss_weight=1.0),
    skip_aux_on_affine_aug=True)
