"""Compatibility fixes of mmdet3d 1.4, mmengine 0.10.7 and torch >= 2.6.

Each module names the upstream behaviour it fixes and when its fix is
applied; :func:`apply_patches` applies all of them and is called by
``import ddml``:

* :mod:`.kitti_rotated_iou`: KITTI BEV/3D IoU on the CPU when numba has no
  CUDA GPU (or ``DDML_KITTI_IOU=cpu``);
* :mod:`.kitti_empty_frames`: ``KittiDataset`` loads frames without
  objects;
* :mod:`.checkpoint_loading`: mmengine checkpoints load with torch's
  ``weights_only=True``, anything else is refused with a clear error;
* :mod:`.numba_threads`: numba's parallel loops (KITTI evaluation) leave
  torch's thread count as it was;
* :mod:`.mono_inferencer`: mmdet3d's ``MonoDet3DInferencer`` runs (its
  ``KeyError: 'CAM2'``), with ddml's configs and intrinsics of one's own;
* :mod:`.monoflex` (with :mod:`.monoflex_coder`, :mod:`.monoflex_losses`,
  :mod:`.monoflex_transforms`): MonoFlex trains (``FixedMonoFlexHead``,
  ``FixedMonoFlexCoder``, ``FixedMultiBinLoss``,
  ``AffineResizeKeepTruncated`` and the ``MonoFlex`` detector, registered
  at import; mmdet3d's own classes are left unchanged).
"""
import warnings

from .checkpoint_loading import (CheckpointRefusedError,
                                 load_local_checkpoint,
                                 mmengine_safe_globals,
                                 register_mmengine_safe_globals,
                                 use_weights_only_checkpoints)
from .kitti_empty_frames import allow_empty_kitti_frames
from .kitti_rotated_iou import (KITTI_IOU_BACKENDS, KITTI_IOU_ENV,
                                get_kitti_iou_backend,
                                resolve_kitti_iou_mode, use_cpu_rotated_iou)
from .mono_inferencer import fix_mono_inferencer, resolve_camera
from .monoflex import FixedMonoFlexHead, MonoFlex
from .monoflex_coder import FixedMonoFlexCoder
from .monoflex_losses import FixedMultiBinLoss
from .monoflex_transforms import AffineResizeKeepTruncated
from .numba_threads import NUMBA_LAYER_ENV, keep_torch_threads_from_numba

__all__ = [
    'apply_patches', 'CheckpointRefusedError', 'load_local_checkpoint',
    'mmengine_safe_globals', 'register_mmengine_safe_globals',
    'use_weights_only_checkpoints', 'allow_empty_kitti_frames',
    'KITTI_IOU_BACKENDS', 'KITTI_IOU_ENV', 'get_kitti_iou_backend',
    'resolve_kitti_iou_mode', 'use_cpu_rotated_iou', 'NUMBA_LAYER_ENV',
    'keep_torch_threads_from_numba', 'fix_mono_inferencer', 'resolve_camera',
    'FixedMonoFlexHead', 'MonoFlex', 'FixedMonoFlexCoder', 'FixedMultiBinLoss',
    'AffineResizeKeepTruncated'
]


def apply_patches() -> None:
    """Apply every fix of this package (idempotent).

    The KITTI rotated-IoU backend follows ``DDML_KITTI_IOU`` (see
    :func:`use_cpu_rotated_iou`); when mmdet3d's KITTI evaluation cannot
    be imported, that fix is skipped with a warning.
    """
    use_weights_only_checkpoints()
    allow_empty_kitti_frames()
    keep_torch_threads_from_numba()
    fix_mono_inferencer()
    try:
        use_cpu_rotated_iou()
    except ImportError as err:  # mmdet3d's KITTI eval missing
        warnings.warn(f'ddml could not patch the KITTI rotated IoU ({err}); '
                      'KITTI BEV/3D AP will need CUDA.')
