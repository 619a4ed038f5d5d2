"""CUDA detection of ``make install`` (tools/cuda_env.sh), on any machine.

``tools/install_stack.sh`` sources ``tools/cuda_env.sh`` and, on a CUDA
machine, calls ``ddml_cuda_plan`` before it installs anything and again
before the mmcv build. These tests source only ``cuda_env.sh`` in a bash
whose PATH holds stand-ins for ``nvidia-smi`` and ``nvcc`` (printing what
the real tools print) and the few coreutils the functions use, so they
say what the real machine would get without a GPU, a toolkit or a build.
"""
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
CUDA_ENV = REPO / 'tools' / 'cuda_env.sh'
INSTALL = REPO / 'tools' / 'install_stack.sh'
TOOLS = ('bash', 'sed', 'grep', 'sort', 'paste', 'head', 'tr', 'dirname',
         'cat', 'printf', 'readlink')

BANNER = """\
Mon Nov 30 13:00:00 2026
+-----------------------------------------------------------------------------+
| NVIDIA-SMI {driver}   Driver Version: {driver}   CUDA Version: {cuda}     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
|   0  NVIDIA H100 80GB HBM3  On| 00000000:18:00.0 Off |                    0 |
+-----------------------------------------------------------------------------+
"""

ARCHS_12_8 = [
    'compute_50', 'compute_52', 'compute_53', 'compute_60', 'compute_61',
    'compute_62', 'compute_70', 'compute_72', 'compute_75', 'compute_80',
    'compute_86', 'compute_87', 'compute_89', 'compute_90', 'compute_100',
    'compute_101', 'compute_120'
]


def _script(path: Path, body: str) -> None:
    path.write_text('#!/bin/bash\n' + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


class FakeMachine:
    """A PATH with stand-ins for nvidia-smi and a CUDA toolkit.

    Args:
        tmp_path (Path): Where the stand-ins live.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.bin = tmp_path / 'bin'
        self.bin.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, f'{tool} is needed by tools/cuda_env.sh'
            (self.bin / tool).symlink_to(found)
        # the host's /usr/local/cuda must not leak into the tests
        self.env: Dict[str, str] = {
            'PATH': str(self.bin),
            'HOME': str(tmp_path),
            'DDML_CUDA_DEFAULT_HOME': str(tmp_path / 'no-default-toolkit')
        }

    def gpu(self, caps: Sequence[str] = ('9.0', ), driver_cuda: str = '12.8',
            query_works: bool = True) -> None:
        """nvidia-smi of a driver supporting ``driver_cuda`` and GPUs of
        compute capabilities ``caps`` (query unsupported: old driver)."""
        caps_out = '\n'.join(caps) if query_works else \
            'Field "compute_cap" is not a valid field to query.'
        caps_rc = 0 if query_works else 2
        _script(self.bin / 'nvidia-smi', f"""\
if [ "$1" = --query-gpu=compute_cap ]; then
  cat <<'OUT'
{caps_out}
OUT
  exit {caps_rc}
fi
cat <<'OUT'
{BANNER.format(driver='570.86.15', cuda=driver_cuda)}OUT
""")

    def broken_gpu(self) -> None:
        """nvidia-smi installed but failing (no driver loaded)."""
        _script(self.bin / 'nvidia-smi',
                'echo "NVIDIA-SMI has failed because it could not '
                'communicate with the NVIDIA driver." >&2\nexit 9\n')

    def toolkit(self, cuda: str = '12.8', name: str = 'cuda',
                archs: Optional[Sequence[str]] = None,
                headers: str = 'include') -> Path:
        """A CUDA toolkit root whose bin/nvcc reports ``cuda``, with the
        runtime header under ``headers`` ('' for none)."""
        home = self.root / name
        (home / 'bin').mkdir(parents=True)
        if headers:
            (home / headers).mkdir(parents=True)
            (home / headers / 'cuda_runtime.h').write_text('')
        archs = ARCHS_12_8 if archs is None else archs
        _script(home / 'bin' / 'nvcc', f"""\
case "$1" in
  --version) cat <<'OUT'
nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Fri_Feb_21_20:23:50_PST_2025
Cuda compilation tools, release {cuda}, V{cuda}.93
Build cuda_{cuda}.r{cuda}/compiler.35583870_0
OUT
  ;;
  --list-gpu-arch) printf '%s\\n' {' '.join(archs)} ;;
  *) exit 1 ;;
esac
""")
        return home

    def run(self, code: str, **env: str) -> subprocess.CompletedProcess:
        """Run bash ``code`` after sourcing tools/cuda_env.sh."""
        full_env = dict(self.env, **env)
        return subprocess.run(
            [str(self.bin / 'bash'), '-c',
             f'set -euo pipefail; . "{CUDA_ENV}"; {code}'],
            env=full_env, capture_output=True, text=True, timeout=60)

    def plan(self, torch_cuda: str = '', **env: str) -> Dict[str, str]:
        """Run ddml_cuda_plan; return its variables, status and stderr."""
        names = ('DDML_DRIVER_CUDA', 'DDML_CUDA_HOME', 'DDML_NVCC_CUDA',
                 'DDML_ARCH_LIST', 'DDML_TORCH_VARIANT', 'DDML_TORCH_INDEX')
        show = '; '.join(f'echo "{n}=${{{n}}}"' for n in names)
        proc = self.run(
            f'rc=0; ddml_cuda_plan "{torch_cuda}" || rc=$?; {show}; '
            'echo "rc=$rc"', **env)
        assert proc.returncode == 0, proc.stderr
        out = dict(line.split('=', 1) for line in proc.stdout.splitlines())
        out['stderr'] = proc.stderr
        return out


@pytest.fixture
def machine(tmp_path) -> FakeMachine:
    return FakeMachine(tmp_path)


def wanted(machine: FakeMachine, **env: str) -> int:
    proc = machine.run('rc=0; ddml_cuda_wanted || rc=$?; echo $rc', **env)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def test_cuda_wanted_follows_nvidia_smi_and_ddml_cuda(machine):
    assert wanted(machine) == 1  # no nvidia-smi: the CPU path
    machine.broken_gpu()
    assert wanted(machine) == 1  # nvidia-smi fails: the CPU path
    machine.gpu()
    assert wanted(machine) == 0
    assert wanted(machine, DDML_CUDA='0') == 1
    (machine.bin / 'nvidia-smi').unlink()
    assert wanted(machine, DDML_CUDA='1') == 0
    proc = machine.run('ddml_cuda_wanted', DDML_CUDA='maybe')
    assert proc.returncode == 2
    assert 'DDML_CUDA=maybe is not valid' in proc.stderr


def test_plan_picks_local_arch_toolkit_and_torch_build(machine):
    machine.gpu(caps=('9.0', '9.0'), driver_cuda='12.9')
    home = machine.toolkit('12.8')
    out = machine.plan(CUDA_HOME=str(home))
    assert out['rc'] == '0', out['stderr']
    assert out['DDML_DRIVER_CUDA'] == '12.9'
    assert out['DDML_CUDA_HOME'] == str(home)
    assert out['DDML_NVCC_CUDA'] == '12.8'
    assert out['DDML_ARCH_LIST'] == '9.0'  # one entry per distinct GPU
    assert out['DDML_TORCH_VARIANT'] == 'cu128'
    assert out['DDML_TORCH_INDEX'] == \
        'https://download.pytorch.org/whl/cu128'
    # torch already installed with the same CUDA: still fine
    assert machine.plan('12.8', CUDA_HOME=str(home))['rc'] == '0'
    # an explicit index wins
    out = machine.plan(CUDA_HOME=str(home), DDML_TORCH_INDEX_URL='file:///w')
    assert out['DDML_TORCH_INDEX'] == 'file:///w'


def test_plan_mixed_gpus_and_explicit_arch_list(machine):
    machine.gpu(caps=('9.0', '8.6', '8.0', '8.6'))
    home = machine.toolkit('12.8')
    out = machine.plan(CUDA_HOME=str(home))
    assert out['DDML_ARCH_LIST'] == '8.0;8.6;9.0'
    out = machine.plan(CUDA_HOME=str(home), TORCH_CUDA_ARCH_LIST='8.9+PTX')
    assert out['rc'] == '0'
    assert out['DDML_ARCH_LIST'] == '8.9+PTX'


def test_plan_finds_nvcc_on_path_as_torch_does(machine):
    machine.gpu()
    home = machine.toolkit('12.6', name='cuda-12.6')
    machine.env['PATH'] += os.pathsep + str(home / 'bin')
    out = machine.plan('12.6')
    assert out['rc'] == '0', out['stderr']
    assert out['DDML_CUDA_HOME'] == str(home)
    assert out['DDML_TORCH_VARIANT'] == 'cu126'
    # CUDA_HOME takes precedence over PATH, as in torch.utils.cpp_extension
    other = machine.toolkit('12.8', name='cuda-12.8')
    out = machine.plan('', CUDA_HOME=str(other))
    assert out['DDML_NVCC_CUDA'] == '12.8'


def test_nvcc_wrapper_or_link_on_path_leads_to_the_toolkit(machine):
    """An nvcc on PATH outside a toolkit (a wrapper script in
    /usr/local/bin, a symlink) would give torch's guess CUDA_HOME=/usr/local
    without headers; the toolkit it stands for is used instead."""
    machine.gpu()
    home = machine.toolkit('12.8', name='cuda-12.8')
    links = machine.root / 'local' / 'bin'
    links.mkdir(parents=True)
    (links / 'nvcc').symlink_to(home / 'bin' / 'nvcc')
    machine.env['PATH'] += os.pathsep + str(links)
    out = machine.plan('')
    assert out['rc'] == '0', out['stderr']
    assert out['DDML_CUDA_HOME'] == str(home)
    # a wrapper script: only the default toolkit is left
    (links / 'nvcc').unlink()
    _script(links / 'nvcc', f'exec "{home}/bin/nvcc" "$@"\n')
    out = machine.plan('')
    assert out['rc'] == '1'
    assert 'is not a CUDA toolkit root' in out['stderr']
    out = machine.plan('', DDML_CUDA_DEFAULT_HOME=str(home))
    assert out['rc'] == '0', out['stderr']
    assert out['DDML_CUDA_HOME'] == str(home)


def test_toolkit_without_headers_stops(machine):
    machine.gpu()
    bare = machine.toolkit('12.8', name='bare', headers='')
    out = machine.plan(CUDA_HOME=str(bare))
    assert out['rc'] == '1'
    assert f'{bare} is not a CUDA toolkit root' in out['stderr']
    # conda's layout keeps the headers under targets/<arch>/include
    conda = machine.toolkit('12.8', name='conda',
                            headers='targets/x86_64-linux/include')
    assert machine.plan(CUDA_HOME=str(conda))['rc'] == '0'


def test_missing_nvcc_stops_with_what_to_install(machine):
    machine.gpu(driver_cuda='12.8')
    empty = machine.root / 'no-toolkit'
    empty.mkdir()
    out = machine.plan(CUDA_HOME=str(empty))
    assert out['rc'] == '1'
    assert 'nvcc' in out['stderr'] and 'was not found' in out['stderr']
    assert 'no newer than 12.8' in out['stderr']
    assert 'export CUDA_HOME=' in out['stderr']
    assert 'DDML_CUDA=0 make install' in out['stderr']
    # with torch installed, it names torch's CUDA version
    out = machine.plan('12.6', CUDA_HOME=str(empty))
    assert out['rc'] == '1'
    assert 'install the CUDA\ntoolkit 12.6' in out['stderr']
    assert 'export CUDA_HOME=/usr/local/cuda-12.6' in out['stderr']


def test_nvcc_torch_mismatch_names_both_ways_out(machine):
    machine.gpu()
    home = machine.toolkit('12.8')
    out = machine.plan('12.6', CUDA_HOME=str(home))
    assert out['rc'] == '1'
    err = out['stderr']
    assert 'built with CUDA 12.6' in err and 'is CUDA 12.8' in err
    assert 'export CUDA_HOME=/usr/local/cuda-12.6' in err
    assert ('--force-reinstall torch==2.13.0 --index-url '
            'https://download.pytorch.org/whl/cu128') in err
    # only major.minor counts: 12.8 and 12.8.1 agree
    assert machine.plan('12.8.1', CUDA_HOME=str(home))['rc'] == '0'
    # a different major is a mismatch too
    assert machine.plan('11.8', CUDA_HOME=str(home))['rc'] == '1'


def test_cpu_torch_on_a_gpu_machine_stops(machine):
    machine.gpu()
    home = machine.toolkit('12.8')
    out = machine.plan('none', CUDA_HOME=str(home))
    assert out['rc'] == '1'
    assert "torch is a CPU build" in out['stderr']
    assert '--index-url https://download.pytorch.org/whl/cu128' in \
        out['stderr']


def test_toolkit_newer_than_driver_stops(machine):
    machine.gpu(driver_cuda='12.4')
    home = machine.toolkit('12.8')
    out = machine.plan(CUDA_HOME=str(home))
    assert out['rc'] == '1'
    assert 'supports CUDA <= 12.4' in out['stderr']
    assert 'Update the driver' in out['stderr']
    # 12.10 > 12.9: versions compare as numbers, not strings
    machine.gpu(driver_cuda='12.10')
    assert machine.plan('', CUDA_HOME=str(home))['rc'] == '0'


def test_old_driver_without_compute_cap_needs_arch_list(machine):
    machine.gpu(query_works=False)
    home = machine.toolkit('12.8')
    out = machine.plan(CUDA_HOME=str(home))
    assert out['rc'] == '1'
    assert 'TORCH_CUDA_ARCH_LIST=8.6' in out['stderr']
    out = machine.plan(CUDA_HOME=str(home), TORCH_CUDA_ARCH_LIST='8.6')
    assert out['rc'] == '0' and out['DDML_ARCH_LIST'] == '8.6'


def test_gpu_newer_than_nvcc_stops(machine):
    home = machine.toolkit('12.4', archs=ARCHS_12_8[:-3])
    machine.gpu(caps=('12.0', ), driver_cuda='12.8')
    out = machine.plan(CUDA_HOME=str(home))
    assert out['rc'] == '1'
    assert 'cannot compile for compute\ncapability 12.0' in out['stderr']


def test_container_build_without_gpu(machine):
    """DDML_CUDA=1 without a visible GPU: no driver check, explicit arch."""
    home = machine.toolkit('12.8')
    out = machine.plan(CUDA_HOME=str(home), DDML_CUDA='1')
    assert out['rc'] == '1'  # nothing to read the capability from
    out = machine.plan(CUDA_HOME=str(home), DDML_CUDA='1',
                       TORCH_CUDA_ARCH_LIST='8.0;9.0')
    assert out['rc'] == '0', out['stderr']
    assert out['DDML_DRIVER_CUDA'] == ''


def test_cli_report(machine):
    proc = subprocess.run([str(machine.bin / 'bash'), str(CUDA_ENV)],
                          env=machine.env, capture_output=True, text=True)
    assert proc.returncode == 0
    assert 'takes the CPU path' in proc.stdout
    machine.gpu(caps=('8.6', ))
    home = machine.toolkit('12.8')
    proc = subprocess.run([str(machine.bin / 'bash'), str(CUDA_ENV)],
                          env=dict(machine.env, CUDA_HOME=str(home)),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'TORCH_CUDA_ARCH_LIST: 8.6' in proc.stdout
    assert 'torch build: cu128' in proc.stdout
    proc = subprocess.run([str(machine.bin / 'bash'), str(CUDA_ENV), '12.6'],
                          env=dict(machine.env, CUDA_HOME=str(home)),
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert 'built with CUDA 12.6' in proc.stderr


def test_install_stack_sources_the_detection():
    """install_stack.sh parses and uses cuda_env.sh's functions, and its
    CUDA path builds mmcv with the detected toolkit and architectures."""
    proc = subprocess.run(['bash', '-n', str(INSTALL)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    text = INSTALL.read_text()
    assert '. "$repo/tools/cuda_env.sh"' in text
    assert 'ddml_cuda_plan "$(torch_cuda)"' in text
    assert 'FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$DDML_ARCH_LIST"' in text
    assert 'CUDA_HOME="$DDML_CUDA_HOME"' in text
    # the plan runs before the first pip install
    assert text.index('ddml_cuda_plan') < text.index('pip install -q')
