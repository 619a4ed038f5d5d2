"""numba's parallel loops (KITTI evaluation) leave torch's thread count
alone once ddml is imported; NUMBA_THREADING_LAYER still wins."""
import os
import subprocess
import sys

import pytest

_CODE = '''
import numpy as np, torch
import ddml
from ddml.evaluation.rotated_iou import rotate_iou_cpu_eval
torch.set_num_threads(1)
torch.nn.functional.conv2d(torch.ones(1, 4, 8, 8), torch.ones(4, 4, 3, 3))
rng = np.random.default_rng(0)
boxes = np.concatenate([rng.uniform(0, 10, (64, 2)),
                        rng.uniform(1, 4, (64, 2)),
                        rng.uniform(-3, 3, (64, 1))], 1)
rotate_iou_cpu_eval(boxes, boxes, parallel=True)  # a numba parallel loop
import numba
print(torch.get_num_threads(), numba.threading_layer())
'''


@pytest.mark.parametrize('layer, expect', [(None, ('1', 'workqueue')),
                                           ('omp', ('2', 'omp'))])
def test_numba_parallel_loop_and_torch_threads(tmp_path, layer, expect):
    env = dict(os.environ, NUMBA_NUM_THREADS='2', OMP_NUM_THREADS='1',
               NUMBA_CACHE_DIR=str(tmp_path))
    env.pop('NUMBA_THREADING_LAYER', None)
    if layer is not None:
        env['NUMBA_THREADING_LAYER'] = layer
    proc = subprocess.run([sys.executable, '-c', _CODE], env=env,
                          capture_output=True, text=True, timeout=300)
    if layer == 'omp' and 'omp' in proc.stderr and proc.returncode:
        pytest.skip(f'numba has no OpenMP layer here: {proc.stderr[-300:]}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads, used = proc.stdout.split()[-2:]
    # without ddml's fix (the user's 'omp'), torch ends up with numba's 2
    assert (threads, used) == expect
