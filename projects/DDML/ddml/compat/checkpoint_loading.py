"""Load mmengine checkpoints on torch >= 2.6 without giving up its safety.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and
refuses every pickled global that is not allow-listed. mmengine 0.10.7
(which calls ``torch.load(filename, map_location=...)``) then cannot load
its own checkpoints: they hold numpy arrays and scalars (``meta``) and the
``HistoryBuffer`` objects of the message hub, whose class-level statistics
methods pickle as ``getattr(HistoryBuffer, 'min')``.

Turning ``weights_only`` off would let any checkpoint run code. Instead,
:func:`use_weights_only_checkpoints` allow-lists exactly the types that
mmengine's own checkpoints hold (torch's *safe globals*) and maps
``builtins.getattr`` to a restricted version that resolves only
``HistoryBuffer``'s registered statistics methods. A checkpoint that
carries any other callable is still refused, now with an error that names
the file, the refused global and what to do. It also registers
:func:`load_local_checkpoint` as mmengine's loader of local paths, so
``load_checkpoint``, ``--resume`` and ``load_from`` get those errors.

When applied: always, by :func:`ddml.compat.apply_patches` (which
``import ddml`` calls). On torch < 2.4 (no safe globals) the allow-list is
skipped; the loader still loads with ``weights_only=True``.
"""
import pickle
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'CheckpointRefusedError', 'mmengine_safe_globals',
    'register_mmengine_safe_globals', 'load_local_checkpoint',
    'use_weights_only_checkpoints'
]


# Statistics methods that HistoryBuffer defines (and registers on first use).
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


class CheckpointRefusedError(pickle.UnpicklingError):
    """A checkpoint holds objects outside the allow-list of safe types."""


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    mmengine pickles the class-level dict ``HistoryBuffer._statistics_methods``
    whose values are functions such as ``HistoryBuffer.mean``; pickle writes
    each as ``getattr(HistoryBuffer, 'mean')``. Nothing else is resolved.

    Args:
        obj: The object to read from; must be ``HistoryBuffer``.
        name: A statistics method registered on ``HistoryBuffer``.

    Returns:
        The unbound statistics method.
    """
    registered = getattr(HistoryBuffer, '_statistics_methods', {})
    allowed = set(_HISTORY_BUFFER_STATISTICS) | set(registered)
    if obj is HistoryBuffer and name in allowed:
        return registered.get(name) or getattr(HistoryBuffer, name)
    raise CheckpointRefusedError(
        f'refusing getattr({obj!r}, {name!r}) while unpickling: only the '
        'statistics methods of mmengine.logging.HistoryBuffer '
        f'({sorted(allowed)}) are allowed')


def mmengine_safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The globals that mmengine's own checkpoints need, and nothing more.

    Returns:
        Entries for :func:`torch.serialization.add_safe_globals`.
    """
    try:  # numpy >= 2 moved numpy.core to numpy._core
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    safe: List[Union[Callable, Tuple[Callable, str]]] = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
        (_history_buffer_getattr, 'builtins.getattr'),
    ]
    # numpy >= 1.25 pickles dtypes through their classes in numpy.dtypes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return safe


def register_mmengine_safe_globals() -> bool:
    """Allow-list :func:`mmengine_safe_globals` in torch (idempotent).

    Returns:
        False on a torch without safe globals (< 2.4), where
        ``torch.load`` does not default to ``weights_only`` anyway.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(mmengine_safe_globals())
    return True


def load_local_checkpoint(filename: str,
                          map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint with ``weights_only=True`` and clear errors.

    Registered as mmengine's loader for local paths, so ``load_checkpoint``,
    ``--resume`` and ``load_from`` use it.

    Args:
        filename: Path of the checkpoint file.
        map_location: Same as :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict with ``state_dict``).

    Raises:
        FileNotFoundError: When ``filename`` does not exist.
        CheckpointRefusedError: When the file holds a global outside the
            allow-list (for example a callable that would run code).
    """
    import os.path as osp
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename} does not exist')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch wraps the unpickler's reason in advice on weights_only=False
        reason = str(err)
        for marker in ('WeightsUnpickler error:', 'from a trusted source.'):
            reason = reason.split(marker, 1)[-1]
        reason = ' '.join(reason.split('Check the documentation')[0].split())
        raise CheckpointRefusedError(
            f'refused to load checkpoint {filename}: it holds an object '
            'outside the allow-list of types that mmengine checkpoints '
            f'contain ({reason}). If you '
            'trust its source and know what it holds, load it once with '
            "torch.load(path, weights_only=False) and save only its "
            "'state_dict' and 'meta'; otherwise do not use it.") from err


def use_weights_only_checkpoints() -> None:
    """Allow-list mmengine's types and load local paths with
    :func:`load_local_checkpoint` (idempotent)."""
    register_mmengine_safe_globals()
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
