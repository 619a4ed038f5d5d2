"""tools/dist_train.sh trains the demo DDML config with 2 processes.

Without CUDA, ``ddml.engine.launch`` switches the configs' nccl backend to
gloo, so the real launcher (``torch.distributed.run``) runs two CPU
processes that gather descriptors across each other for ``loss_qi``.

mmengine 0.10 alone would still stop there: its ``init_dist`` calls
``torch.cuda.set_device`` and ``Runner.wrap_model`` passes
``device_ids=[LOCAL_RANK]`` to DDP, which torch refuses for a CPU module;
``ddml.engine.launch`` works around both (the run below fails with
AttributeError ``_cuda_setDevice`` or ValueError ``device_ids`` without).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddml.testing import free_port, write_train_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = (REPO / 'configs' / 'demo' /
               'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py')
MAX_ITERS = 2


def _write_config(path: Path, data_root: Path) -> Path:
    return write_train_config(path, data_root, max_iters=MAX_ITERS,
                              checkpoint_interval=MAX_ITERS, seed=0,
                              base=DEMO_CONFIG)


def _dist_train(config: Path, work_dir: Path):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    return subprocess.run(
        ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), '2',
         '--work-dir', str(work_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _check_run(proc, work_dir: Path) -> None:
    out = proc.stdout + proc.stderr
    # torch.distributed.run exits non-zero if any of its processes failed
    assert proc.returncode == 0, out[-4000:]
    assert 'using the gloo backend instead of nccl' in out
    assert "'backend': 'gloo'" in out
    logs = sorted(work_dir.glob('*/*.log'))
    assert len(logs) == 1, logs  # only rank 0 writes the log
    log = logs[0].read_text()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in log
    records = [
        json.loads(line) for line in sorted(work_dir.glob(
            '*/vis_data/scalars.json'))[0].read_text().splitlines()
    ]
    losses = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in losses] == list(range(1, MAX_ITERS + 1))
    for rec in losses:
        for key in ('loss', 'loss_qi', 'loss_obj_depth', 'loss_cls',
                    'loss_bbox'):
            assert math.isfinite(rec[key]), (key, rec)
    assert (work_dir / f'iter_{MAX_ITERS}.pth').is_file()


@pytest.mark.slow
def test_dist_train_two_gloo_processes(synthetic_kitti_root, tmp_path):
    config = _write_config(tmp_path / 'dist.py', synthetic_kitti_root)
    work_dir = tmp_path / 'work'
    _check_run(_dist_train(config, work_dir), work_dir)
