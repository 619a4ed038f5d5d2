"""Keep numba's parallel loops from changing torch's thread count.

Upstream behaviour: numba picks its OpenMP threading layer when it can,
and that layer shares the ``libgomp`` that torch has already loaded. Its
first parallel loop sets the OpenMP thread count of the process to
``NUMBA_NUM_THREADS`` (the number of cores), so afterwards
``torch.get_num_threads()`` reports that count too, whatever
``OMP_NUM_THREADS`` or ``torch.set_num_threads`` had asked. mmdet3d's KITTI
evaluation (``kitti_utils/eval.py``) and ddml's CPU rotated IoU are numba
parallel loops, so a training with in-training KITTI validation on the CPU
ran its later iterations with more threads than asked: on a loaded 2-core
machine the demo detector went from 0.7 s to 6 s per iteration after its
first validation (docs/benchmarks.md, "Demo").

Fix, applied by :func:`ddml.compat.apply_patches` unless the user chose a
layer with ``NUMBA_THREADING_LAYER``: numba's own ``workqueue`` layer,
which has its own threads and leaves OpenMP (and torch) alone. The loops
still run in parallel.
"""
import os

__all__ = ['NUMBA_LAYER_ENV', 'keep_torch_threads_from_numba']

#: The environment variable with which a user picks numba's layer.
NUMBA_LAYER_ENV = 'NUMBA_THREADING_LAYER'


def keep_torch_threads_from_numba() -> str:
    """Use numba's ``workqueue`` threading layer unless one is chosen.

    Returns:
        str: The layer numba will use for its parallel loops (``'default'``
        means numba picks, as without ddml: the user set it so).
    """
    import numba
    if os.environ.get(NUMBA_LAYER_ENV):
        return str(numba.config.THREADING_LAYER)
    numba.config.THREADING_LAYER = 'workqueue'
    return 'workqueue'
