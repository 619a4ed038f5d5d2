"""Helpers for tests and benchmarks (as ``mmdet3d.testing``).

* :func:`make_samples`: hand-made ``Det3DDataSample``s with 3D boxes,
  projected centres, depths and 2D boxes; :func:`make_box_depth_sample`:
  one with only 2D boxes and depths (what the object depth map reads);
* :func:`build_root_from_v2_info`, :func:`build_root_from_v1_info`: a KITTI
  root for one frame, rebuilt from its mmdet3d info;
  :func:`compare_infos` compares two info trees;
* :func:`write_train_config`: a small iteration-based training config;
* :func:`synthetic_kitti_annos`: synthetic KITTI ground truth and
  detections for timing mmdet3d's KITTI evaluation;
* :func:`run_in_gloo_processes`: a function in several CPU processes of
  one gloo process group; :func:`free_port`;
* :mod:`ddml.testing.reference`: the authors' releases (MonoDLE, DDML)
  read from ``../shared/reference`` for parity tests
  (:func:`require_release`, :func:`import_release_module`,
  :func:`load_definitions`) and KITTI frames both sides read
  (:func:`write_kitti_root`, :func:`release_dataset`,
  :func:`mmdet3d_kitti_dataset`).

The hook that kills a training run (:mod:`ddml.testing.hooks`) is imported
by configs only, so importing this package registers nothing.
"""
from .distributed import free_port, run_in_gloo_processes
from .kitti_annos import KITTI_EVAL_CLASSES, synthetic_kitti_annos
from .kitti_roots import (build_root_from_v1_info, build_root_from_v2_info,
                          compare_infos)
from .reference import (ReferenceNotFound, import_release_module,
                        load_definitions, mmdet3d_kitti_dataset,
                        reference_root, release_dataset, release_root,
                        require_release, write_kitti_root)
from .samples import make_box_depth_sample, make_samples
from .train_configs import write_train_config

__all__ = [
    'free_port', 'run_in_gloo_processes', 'KITTI_EVAL_CLASSES',
    'synthetic_kitti_annos', 'build_root_from_v1_info',
    'build_root_from_v2_info', 'compare_infos', 'make_box_depth_sample',
    'make_samples', 'write_train_config', 'ReferenceNotFound',
    'import_release_module', 'load_definitions', 'mmdet3d_kitti_dataset',
    'reference_root', 'release_dataset', 'release_root', 'require_release',
    'write_kitti_root'
]
