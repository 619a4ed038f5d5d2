"""KITTI BEV / 3D / AOS evaluation on machines without CUDA.

Upstream behaviour fixed: mmdet3d 1.4 computes the rotated BEV overlaps
of its KITTI evaluation (``kitti_eval``, used by ``KittiMetric``) with a
numba-CUDA kernel,
``kitti_utils.rotate_iou.rotate_iou_gpu_eval``. Without a GPU that module
cannot even be imported (the kernel is compiled eagerly), so only 2D AP
works; numba's CUDA simulator runs but gives wrong IoUs for rotated boxes.

:func:`use_cpu_rotated_iou` (called by
:func:`ddml.compat.apply_patches`, which ``import ddml`` calls) replaces
the two functions of ``mmdet3d.evaluation.functional.kitti_utils.eval``
that call the kernel, ``bev_box_overlap`` and ``d3_box_overlap`` (they are
looked up as module globals by ``calculate_iou_partly`` at call time), with
versions that use the exact CPU implementation
:func:`ddml.evaluation.rotated_iou.rotate_iou_cpu_eval` (the computation
itself lives there; this module only dispatches). The 3D path keeps
mmdet3d's own ``d3_box_overlap_kernel`` (height overlap times BEV
intersection area, from the kernel's criterion 2), so its semantics are
unchanged.

When applied, in order of precedence:

* ``use_cpu_rotated_iou(True)`` / ``use_cpu_rotated_iou(False)`` (or the
  strings ``'cpu'``, ``'cuda'``, ``'auto'``);
* the environment variable ``DDML_KITTI_IOU`` = ``cpu`` | ``cuda`` |
  ``auto`` (read when ``enable`` is None, e.g. at ``import ddml``);
* ``auto`` (default): the original CUDA kernel when numba can use a CUDA
  GPU (checked lazily at the first evaluation, so importing ddml does not
  initialise CUDA), the CPU otherwise. On CUDA machines results are thus
  unchanged unless the CPU is requested.

Example:
    >>> import ddml  # KITTI BEV/3D AP now work on CPU-only machines
    >>> from ddml.compat import use_cpu_rotated_iou
    >>> use_cpu_rotated_iou(True)  # force the CPU even with a GPU
    'cpu'
"""
import importlib
import logging
import os
from types import ModuleType
from typing import Callable, Dict, Optional, Union

import numpy as np

from ..evaluation.rotated_iou import rotate_iou_cpu_eval

__all__ = [
    'KITTI_IOU_ENV', 'KITTI_IOU_BACKENDS', 'use_cpu_rotated_iou',
    'get_kitti_iou_backend', 'resolve_kitti_iou_mode'
]

#: Environment variable selecting the rotated-IoU backend.
KITTI_IOU_ENV = 'DDML_KITTI_IOU'
#: Valid values of :data:`KITTI_IOU_ENV` and of ``use_cpu_rotated_iou``.
KITTI_IOU_BACKENDS = ('auto', 'cpu', 'cuda')

_EVAL_MODULE = 'mmdet3d.evaluation.functional.kitti_utils.eval'
_PATCHED_NAMES = ('bev_box_overlap', 'd3_box_overlap')
# Marks our replacements and names where the originals are kept on the
# eval module itself, so re-importing ddml never mistakes a replacement
# for an original.
_MARK = '__ddml_kitti_iou__'
_ORIGINAL_PREFIX = '_ddml_original_'

_state: Dict[str, Optional[str]] = {
    'mode': None,  # 'auto' | 'cpu' | 'cuda' once patched
    'auto_backend': None,  # resolved backend of 'auto' (cached)
    'logged': None,  # last logged (mode, backend) message
}


def _log(msg: str, level: int = logging.INFO) -> None:
    """Log through mmengine's current logger (stdlib logging as fallback)."""
    try:
        from mmengine.logging import print_log
    except ImportError:  # pragma: no cover - mmengine comes with mmdet3d
        logging.getLogger(__name__).log(level, msg)
    else:
        print_log(msg, logger='current', level=level)


def resolve_kitti_iou_mode(enable: Union[bool, str, None] = None) -> str:
    """Turn the ``enable`` argument or :data:`KITTI_IOU_ENV` into a mode.

    Args:
        enable (bool | str, optional): True or ``'cpu'``: always the CPU;
            False or ``'cuda'``: always the original CUDA kernel;
            ``'auto'``: CUDA when available, else CPU. None reads
            ``DDML_KITTI_IOU`` (unset or empty means ``'auto'``).

    Returns:
        str: One of ``'auto'``, ``'cpu'``, ``'cuda'``.

    Raises:
        ValueError: If ``enable`` or ``DDML_KITTI_IOU`` is not valid.
    """
    if isinstance(enable, bool):
        return 'cpu' if enable else 'cuda'
    if enable is None:
        raw = os.environ.get(KITTI_IOU_ENV, '')
        value = raw.strip().lower() or 'auto'
        if value not in KITTI_IOU_BACKENDS:
            raise ValueError(
                f'Invalid environment variable {KITTI_IOU_ENV}={raw!r}: '
                f'valid values are {", ".join(KITTI_IOU_BACKENDS)} '
                '(case-insensitive; unset means auto).')
        return value
    if isinstance(enable, str) and enable.strip().lower() in \
            KITTI_IOU_BACKENDS:
        return enable.strip().lower()
    raise ValueError(
        f'Invalid KITTI rotated-IoU backend {enable!r}: pass True (cpu), '
        f'False (cuda), None (read {KITTI_IOU_ENV}) or one of '
        f'{", ".join(repr(b) for b in KITTI_IOU_BACKENDS)}.')


def _cuda_usable() -> bool:
    """Whether numba can run the CUDA kernel on a real GPU."""
    try:
        import numba
        if getattr(numba.config, 'ENABLE_CUDASIM', 0):
            # The simulator runs the kernel but its rotated IoUs are wrong.
            return False
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:  # no numba.cuda, no driver, broken toolkit, ...
        return False


def _eval_module() -> ModuleType:
    return importlib.import_module(_EVAL_MODULE)


def _current_backend() -> str:
    """The backend the patched functions use now, logged once."""
    mode = _state['mode'] or 'auto'
    if mode == 'auto':
        if _state['auto_backend'] is None:
            _state['auto_backend'] = 'cuda' if _cuda_usable() else 'cpu'
        backend = _state['auto_backend']
    else:
        backend = mode
    message = ('KITTI BEV/3D rotated IoU: '
               + ('exact CPU implementation (ddml, numba)' if backend ==
                  'cpu' else "mmdet3d's numba-CUDA kernel")
               + f' [{KITTI_IOU_ENV} / use_cpu_rotated_iou mode: {mode}]')
    if _state['logged'] != message:
        _state['logged'] = message
        _log(message)
    return backend


def _original(name: str) -> Callable:
    return getattr(_eval_module(), _ORIGINAL_PREFIX + name)


def bev_box_overlap(boxes: np.ndarray,
                    qboxes: np.ndarray,
                    criterion: int = -1) -> np.ndarray:
    """Replacement of mmdet3d's ``kitti_utils.eval.bev_box_overlap``.

    Args:
        boxes (np.ndarray): (N, 5) camera BEV boxes ``[x, z, l, w, ry]``
            (metres, radians), the detections in ``calculate_iou_partly``.
        qboxes (np.ndarray): (K, 5) boxes in the same format (ground truth).
        criterion (int): See ``rotate_iou_cpu_eval``. Defaults to -1 (IoU).

    Returns:
        np.ndarray: (N, K) float32 overlaps.
    """
    if _current_backend() == 'cuda':
        return _original('bev_box_overlap')(boxes, qboxes, criterion)
    return rotate_iou_cpu_eval(boxes, qboxes, criterion)


def d3_box_overlap(boxes: np.ndarray,
                   qboxes: np.ndarray,
                   criterion: int = -1) -> np.ndarray:
    """Replacement of mmdet3d's ``kitti_utils.eval.d3_box_overlap``.

    As the original: the BEV intersection areas (criterion 2) of the boxes'
    ``[x, z, l, w, ry]`` columns are turned in place into 3D overlaps by
    mmdet3d's ``d3_box_overlap_kernel`` (vertical overlap ``[y - h, y]``
    times BEV intersection, over the union volume for criterion -1).

    Args:
        boxes (np.ndarray): (N, 7) camera boxes ``[x, y, z, l, h, w, ry]``
            (bottom-centre location, metres, radians).
        qboxes (np.ndarray): (K, 7) boxes in the same format.
        criterion (int): -1 IoU, 0 / 1 intersection over the volume of
            ``boxes[n]`` / ``qboxes[k]`` (as ``d3_box_overlap_kernel``).
            Defaults to -1.

    Returns:
        np.ndarray: (N, K) float32 3D overlaps.
    """
    if _current_backend() == 'cuda':
        return _original('d3_box_overlap')(boxes, qboxes, criterion)
    bev_columns = [0, 2, 3, 5, 6]
    rinc = rotate_iou_cpu_eval(boxes[:, bev_columns], qboxes[:, bev_columns],
                               2)
    _eval_module().d3_box_overlap_kernel(boxes, qboxes, rinc, criterion)
    return rinc


_REPLACEMENTS = {
    'bev_box_overlap': bev_box_overlap,
    'd3_box_overlap': d3_box_overlap
}
for _fn in _REPLACEMENTS.values():
    setattr(_fn, _MARK, True)


def use_cpu_rotated_iou(enable: Union[bool, str, None] = None) -> str:
    """Select the rotated-IoU backend of mmdet3d's KITTI evaluation.

    Idempotent; called with no argument when ddml is imported. Patches the
    module attributes ``bev_box_overlap`` and ``d3_box_overlap`` of
    ``mmdet3d.evaluation.functional.kitti_utils.eval`` (``kitti_eval`` and
    ``KittiMetric`` go through them); mode ``'cuda'`` restores mmdet3d's
    originals.

    Args:
        enable (bool | str, optional): True / ``'cpu'``: exact CPU IoU even
            when CUDA is available; False / ``'cuda'``: mmdet3d's original
            CUDA kernel; ``'auto'``: CUDA if numba can use a GPU, else CPU.
            None (default) reads the environment variable ``DDML_KITTI_IOU``
            (``cpu`` | ``cuda`` | ``auto``; unset means ``auto``).

    Returns:
        str: The mode now in effect: ``'auto'``, ``'cpu'`` or ``'cuda'``.

    Raises:
        ValueError: If ``enable`` or ``DDML_KITTI_IOU`` is invalid.
        ImportError: If mmdet3d's KITTI evaluation cannot be imported.
    """
    mode = resolve_kitti_iou_mode(enable)
    module = _eval_module()
    for name, replacement in _REPLACEMENTS.items():
        current = getattr(module, name)
        if not getattr(current, _MARK, False):
            setattr(module, _ORIGINAL_PREFIX + name, current)
        setattr(module, name,
                _original(name) if mode == 'cuda' else replacement)
    _state['mode'] = mode
    _state['auto_backend'] = None  # re-check CUDA at the next evaluation
    if mode != 'auto':
        _current_backend()  # log the explicit choice right away
        if mode == 'cuda' and not _cuda_usable():
            _log(
                f'{KITTI_IOU_ENV}/use_cpu_rotated_iou forces the CUDA '
                'rotated IoU but numba cannot use a CUDA GPU here: KITTI '
                'BEV/3D evaluation will fail (use cpu or auto).',
                level=logging.WARNING)
    return mode


def get_kitti_iou_backend() -> str:
    """The backend KITTI BEV/3D overlaps use now.

    Returns:
        str: ``'cpu'`` or ``'cuda'`` (``'auto'`` resolved; checks CUDA).
    """
    module = _eval_module()
    if not getattr(module.bev_box_overlap, _MARK, False):
        return 'cuda'  # not patched: mmdet3d's original
    return _current_backend()
