# PGD + DDML on KITTI with the loss settings of the authors' release on MonoDLE
# (mingyuShin/DDML-M3DOD): the quasi-isometric loss in its 'official' form
# (temperature 10, detached target, weight 0.5) and the object-wise depth-map
# head at weight 1. Compare with
# ./ddml_pgd_r101-caffe_fpn_head-gn_4xb3-4x_kitti-mono3d.py, which
# trains the 'hinge' form (see configs/README.md).
# The release's sample rules are not set here: this pipeline does not
# shift or scale images at random (fixed Resize and flips), so there is
# no affine_aug mark for skip_aux_on_affine_aug to read and no image to
# skip; and min_difficulty='hard' (leaving out objects of no KITTI
# difficulty) needs per-object difficulty (gt_instances_3d.difficulty),
# which mmdet3d's mono3d pipeline does not load.
_base_ = ['./ddml_pgd_r101-caffe_fpn_head-gn_4xb3-4x_kitti-mono3d.py']

model = dict(
    qi_loss=dict(mode='official', temperature=10.0, detach_target=True,
                 loss_weight=0.5),
    depth_map_head=dict(loss_weight=1.0))
