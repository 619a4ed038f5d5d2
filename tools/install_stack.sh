#!/usr/bin/env bash
# Install ddml's pinned stack into the virtual environment $DDML_VENV
# (default: .venv in the repository). Called by `make install`.
#
# Idempotent: when the venv already holds the pinned versions (and mmcv's
# compiled ops import), a re-run only re-links the editable install of the
# add-on and takes seconds.
#
# On a CUDA machine (`nvidia-smi` works) mmcv is built with its CUDA ops
# for the local GPUs' compute capability only, with the CUDA toolkit whose
# version matches torch's; tools/cuda_env.sh checks the toolkit, the driver
# and torch first and stops, before anything long, with what to install.
#
# Environment:
#   DDML_VENV             where the venv lives (default: <repo>/.venv)
#   DDML_PYTHON           interpreter used to create it (default: python3)
#   DDML_TORCH_INDEX_URL  optional pip index for torch (e.g. PyTorch's CPU
#                         wheel index on a machine where PyPI serves CUDA)
#   MAX_JOBS              parallel compile jobs for mmcv (default: nproc)
#   DDML_CUDA             auto (default), 0 (CPU build even with a GPU) or
#                         1 (CUDA build without a visible GPU); with
#                         CUDA_HOME and TORCH_CUDA_ARCH_LIST, see
#                         tools/cuda_env.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
venv=${DDML_VENV:-$repo/.venv}
python=${DDML_PYTHON:-python3}
req=$repo/requirements/stack.txt
say() { printf '[ddml install %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Read one pin (e.g. "mmcv==2.1.0" -> 2.1.0) from the requirements file.
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$req"; }
TORCH_VERSION=2.13.0
MMENGINE=$(pin mmengine); MMCV=$(pin mmcv); MMDET=$(pin mmdet)
MMDET3D=$(pin mmdet3d); NUMPY=$(pin numpy)

# CUDA or CPU build of mmcv's ops (tools/cuda_env.sh).
DDML_TORCH_VERSION=$TORCH_VERSION
. "$repo/tools/cuda_env.sh"
cuda_status=0
ddml_cuda_wanted || cuda_status=$?
case $cuda_status in
  0) cuda=1 ;;
  1) cuda=0 ;;
  *) exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment at $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

# torch.version.cuda of the venv's torch: "none" for a CPU build, empty
# when torch is not installed.
torch_cuda() {
  "$py" -c 'import torch; print(torch.version.cuda or "none")' \
    2>/dev/null || true
}

# Are mmcv's ops compiled with torch's CUDA version (major.minor)?
cuda_ops_ok() {
  "$py" - <<'PY' 2>/dev/null
import torch
from mmcv.ops import get_compiling_cuda_version
built = get_compiling_cuda_version()  # 'not available' without CUDA ops
assert torch.version.cuda, 'CPU build of torch'
assert built.split('.')[:2] == torch.version.cuda.split('.')[:2], built
PY
}

# Is the stack there in the pinned versions, with mmcv's compiled ops?
stack_ok() {
  "$py" - "$MMENGINE" "$MMCV" "$MMDET" "$MMDET3D" "$NUMPY" <<'PY' 2>/dev/null || return 1
import sys
want = dict(zip(['mmengine', 'mmcv', 'mmdet', 'mmdet3d', 'numpy'], sys.argv[1:]))
import importlib
for name, version in want.items():
    mod = importlib.import_module(name)
    assert mod.__version__ == version, (name, mod.__version__, version)
import torch, scipy, shapely, matplotlib, tqdm, pytest, pkg_resources  # noqa
import mmcv.ops  # noqa: the compiled ops must load
PY
  [ "$cuda" = 0 ] || cuda_ops_ok
}

mmcv_ok() {
  "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV'" \
    2>/dev/null || return 1
  [ "$cuda" = 0 ] || cuda_ops_ok
}

# What the CUDA machine ended up with (information only).
cuda_summary() {
  "$py" - <<'PY' || true
import torch
from mmcv.ops import get_compiling_cuda_version
gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
       else 'none visible to torch')
print(f'[ddml install] torch {torch.__version__} (CUDA {torch.version.cuda})'
      f', mmcv ops built with CUDA {get_compiling_cuda_version()}, GPU: '
      f'{gpu}')
try:
    from numba import cuda
    numba_gpu = cuda.is_available()
except Exception:  # numba without its CUDA target
    numba_gpu = False
if not numba_gpu:
    print("[ddml install] numba cannot use the GPU: KITTI BEV/3D AP uses "
          "ddml's CPU rotated IoU instead of mmdet3d's numba-CUDA kernel "
          '(same figures, see DDML_KITTI_IOU in the README)')
PY
}

if stack_ok; then
  say "stack already installed in $venv (torch $("$py" -c 'import torch; print(torch.__version__)'), mmcv $MMCV with ops, mmdet $MMDET, mmdet3d $MMDET3D)"
else
  if [ "$cuda" = 1 ]; then
    # Before anything long: nvcc, driver and torch must agree.
    say "CUDA machine: checking the CUDA toolkit, the driver and torch"
    if ! ddml_cuda_plan "$(torch_cuda)"; then
      say "stopped before installing anything (see the message above)"
      exit 1
    fi
    ddml_cuda_report | while IFS= read -r line; do say "$line"; done
  fi
  say "installing the pinned stack from $req into $venv"
  pip install -q --upgrade pip wheel "setuptools>=77,<82"
  if [ "$cuda" = 1 ]; then
    if [ -n "$(torch_cuda)" ]; then
      say "keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
    else
      # PyTorch's own index names its builds torch==X+cuXY.
      spec="torch==$TORCH_VERSION"
      [ -n "${DDML_TORCH_INDEX_URL:-}" ] || spec="$spec+$DDML_TORCH_VARIANT"
      say "CUDA $DDML_NVCC_CUDA: installing $spec from $DDML_TORCH_INDEX"
      if ! pip install "$spec" --index-url "$DDML_TORCH_INDEX"; then
        say "ERROR: no $spec at $DDML_TORCH_INDEX. Install a CUDA toolkit for a CUDA version that PyTorch publishes torch==$TORCH_VERSION for (point CUDA_HOME at it), or set DDML_TORCH_INDEX_URL to an index that has a torch==$TORCH_VERSION build for CUDA $DDML_NVCC_CUDA."
        exit 1
      fi
    fi
    # The torch now installed must match nvcc (a kept one too).
    if ! ddml_cuda_plan "$(torch_cuda)"; then
      say "stopped before the mmcv build (see the message above)"
      exit 1
    fi
  elif "$py" -c 'import torch' 2>/dev/null; then
    say "keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
  else
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
      say "CUDA found: installing torch==$TORCH_VERSION"
    else
      say "no CUDA: installing the CPU build of torch==$TORCH_VERSION"
    fi
    if [ -n "${DDML_TORCH_INDEX_URL:-}" ]; then
      pip install "torch==$TORCH_VERSION" --index-url "$DDML_TORCH_INDEX_URL"
    else
      pip install "torch==$TORCH_VERSION"
    fi
  fi
  # Everything but the OpenMMLab packages, with numpy pinned.
  pip install -q "numpy==$NUMPY" "mmengine==$MMENGINE" ninja psutil \
    $(grep -v -E '^(#|$|setuptools|numpy|mmengine|mmcv|mmdet)' "$req")
  if ! mmcv_ok; then
    jobs=${MAX_JOBS:-$(nproc)}
    start=$(date +%s)
    if [ "$cuda" = 1 ]; then
      # A CPU-only mmcv of the pinned version would be kept by pip.
      if "$py" -c 'import mmcv' 2>/dev/null; then
        pip uninstall -y mmcv
      fi
      say "building mmcv==$MMCV from source with its CUDA ops (MMCV_WITH_OPS=1 FORCE_CUDA=1) for TORCH_CUDA_ARCH_LIST=$DDML_ARCH_LIST with nvcc $DDML_NVCC_CUDA ($DDML_CUDA_HOME), $jobs jobs."
      say "the CUDA build time was not measured by ddml (the CPU-only build took 10 minutes on 2 cores here); it happens once per venv."
      # --no-cache-dir: never reuse a CPU-only mmcv wheel from pip's cache.
      MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$DDML_ARCH_LIST" \
        CUDA_HOME="$DDML_CUDA_HOME" MAX_JOBS=$jobs \
        pip install --no-build-isolation --no-cache-dir "mmcv==$MMCV"
    else
      say "building mmcv==$MMCV from source with its ops (MMCV_WITH_OPS=1, $jobs jobs)."
      say "this took 10 minutes on 2 cores here (30 Nov 2026); it happens once per venv."
      MMCV_WITH_OPS=1 MAX_JOBS=$jobs pip install --no-build-isolation "mmcv==$MMCV"
    fi
    took=$(( $(date +%s) - start ))
    if [ "$took" -lt 120 ]; then
      say "mmcv installed in $took s (pip reused a wheel it had built before)"
    else
      say "mmcv built in $(( took / 60 )) minutes"
    fi
    if [ "$cuda" = 1 ] && ! cuda_ops_ok; then
      say "ERROR: mmcv was installed without CUDA ops matching torch's CUDA $(torch_cuda); see the build output above"
      exit 1
    fi
  fi
  pip install -q "mmdet==$MMDET" "mmdet3d==$MMDET3D" "numpy==$NUMPY"
  stack_ok || { say "ERROR: the stack in $venv does not import after installation; see the pip output above"; exit 1; }
  say "stack installed"
fi
[ "$cuda" = 0 ] || cuda_summary

# The add-on itself, editable. A cached venv may point at an older clone,
# so re-link when `ddml` does not resolve to this repository.
where=$(cd / && "$py" -c 'import ddml, os; print(os.path.realpath(ddml.__file__))' 2>/dev/null || true)
case "$where" in
  "$repo"/*) say "ddml is installed from $repo" ;;
  *) say "installing ddml from $repo in editable mode"
     pip install -q --no-deps --no-build-isolation -e "$repo" ;;
esac
