"""tools/benchmark_qi_loss.py: its naive full-matrix baseline computes the
same loss as QuasiIsometricLoss, on the CPU and with ``--device cuda``
(where it also reports synchronised times and peak memory)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'benchmark_qi_loss.py'


def run_tool(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / 'qi.json'
    proc = subprocess.run(
        [sys.executable, str(TOOL), *args, '--json', str(out)],
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def check_rows(report: dict, nums) -> None:
    rows = report['results']
    impls = {'ddml chunk_size=None', 'ddml chunk_size=64',
             'naive full matrix'}
    for num in nums:
        for mode in ('hinge', 'official'):
            found = {r['impl']: r for r in rows
                     if r['num'] == num and r['mode'] == mode}
            assert set(found) == impls, (num, mode)
            for impl, row in found.items():
                assert row['median_s'] > 0
                assert row['value'] > 0
                if impl.startswith('ddml'):
                    assert row['naive_loss_diff'] < 1e-5 * row['value']
                    assert row['naive_grad_diff'] < 1e-5


def test_benchmark_cpu_matches_naive(tmp_path):
    report = run_tool(tmp_path, '--num', '300', '700', '--repeats', '1',
                      '--chunk-size', '64', '--threads', '1')
    assert report['device'] == 'cpu'
    check_rows(report, (300, 700))
    assert all(r['peak_mib'] is None for r in report['results'])


@pytest.mark.cuda
def test_benchmark_cuda_reports_peak_memory(cuda_device, tmp_path):
    report = run_tool(tmp_path, '--device', 'cuda', '--num', '4096',
                      '--repeats', '2', '--chunk-size', '64')
    assert report['device'].startswith('cuda')
    check_rows(report, (4096, ))
    for row in report['results']:
        assert row['peak_mib'] > 0
    peak = {r['impl']: r['peak_mib'] for r in report['results']
            if r['mode'] == 'hinge'}
    # the banded, chunked loss holds far less than the full matrices
    assert peak['ddml chunk_size=64'] < peak['naive full matrix']


def test_benchmark_cuda_without_gpu_says_so(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is present; this checks the error without one')
    proc = subprocess.run([sys.executable, str(TOOL), '--device', 'cuda'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'CUDA is not available' in proc.stderr
