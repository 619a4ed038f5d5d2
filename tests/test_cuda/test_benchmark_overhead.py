"""tools/benchmark_overhead.py --device cuda: the demo detectors and their
ddml_* wrappers train and infer on the GPU at a tiny size, with
CUDA-synchronised medians and peak memory per model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'benchmark_overhead.py'


def test_benchmark_overhead_on_cuda(cuda_device, tmp_path):
    pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')
    out = tmp_path / 'overhead.json'
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--device', 'cuda', '--models',
         'smoke-demo', 'monodle-demo', '--height', '96', '--width', '320',
         '--objects', '4', '--batch-size', '2', '--iters', '2',
         '--repeats', '2', '--warmup', '1', '--json', str(out)],
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['device'].startswith('cuda') and report['failed'] == []
    assert 'compute capability' in report['machine']
    runs = report['runs']
    assert [Path(r['ddml_config']).name[:12] for r in runs] == [
        'ddml_smoke_r', 'ddml_monodle'
    ]
    for run in runs:
        assert run['input'] == [2, 3, 96, 320]
        for key in ('train_s', 'infer_s'):
            for model in ('baseline', 'ddml'):
                med = run[key][model]
                assert med['wall'] > 0 and med['peak_mib'] > 0
                samples = run[key.replace('_s', '_samples')][model]
                assert len(samples['wall']) == len(samples['peak_mib']) == 4
            assert set(run[key.replace('_s', '_ratio')]) == {
                'wall', 'cpu', 'peak_mib'
            }
        # a training step holds activations and gradients that inference
        # does not; the wrapper's step holds the auxiliary head's too
        for model in ('baseline', 'ddml'):
            assert run['train_s'][model]['peak_mib'] > \
                run['infer_s'][model]['peak_mib']
        assert run['train_s']['ddml']['peak_mib'] >= \
            run['train_s']['baseline']['peak_mib']
        assert run['state_mib']['ddml'] > run['state_mib']['baseline'] > 0
        assert run['aux_s']['peak_mib'] > 0
    assert proc.stdout.count('CUDA-synchronised medians') == 2
    assert proc.stdout.count('peak memory above resident') == 4
