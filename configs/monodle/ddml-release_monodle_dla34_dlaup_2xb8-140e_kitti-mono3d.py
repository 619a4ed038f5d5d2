# MonoDLE + DDML with the settings of the authors' release (Choi, Shin, Im,
# NeurIPS 2023; their code is built on MonoDLE's): the quasi-isometric loss
# in its released form (mode='official', temperature 10, weight 0.5, the
# second descriptor of a pair detached) with K=1.5, B=0.5, eps=10 m, and
# the object-wise depth-map head with weight 1. See the caveat of
# mode='official' in QuasiIsometricLoss's docstring.
# The release's sample rules (mingyuShin/DDML-M3DOD, c378da3): the
# auxiliary losses skip the images that RandomShiftScale shifted or scaled
# (skip_aux_on_affine_aug=True, read from the affine_aug mark of
# AffineResize); and objects of no KITTI difficulty ('UnKnown') get no
# descriptor and no depth-map target (min_difficulty='hard'). The second rule
# reads each object's difficulty from gt_instances_3d, which the MonoDLE
# training pipeline already carries (LoadObjectDifficulty,
# AffineResizeKeepInstanceKeys, Pack3DDetInputsWithDifficulty; info files
# from ddml's converter, tools/create_data.py, which writes the codes).
# The network is the release's, obj_depth head included (ObjectDepthMapHead:
# Conv3x3(64 -> 256) + ReLU + Conv1x1(256 -> 2) on the neck output): a
# checkpoint of the release converts to this config with
# tools/convert_release_checkpoint.py.
_base_ = [
    './ddml_monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py',
    '../_base_/ddml-release.py'
]

model = dict(
    qi_loss={{_base_.ddml_release_qi_loss}},
    depth_map_head={{_base_.ddml_release_depth_map_head}},
    skip_aux_on_affine_aug=True,
    min_difficulty='hard')
