#!/usr/bin/env bash
# Install ddml's pinned stack into the virtual environment $DDML_VENV
# (default: .venv in the repository). Called by `make install`.
#
# Idempotent: when the venv already holds the pinned versions (and mmcv's
# compiled ops import), a re-run only re-links the editable install of the
# add-on and takes seconds.
#
# Environment:
#   DDML_VENV             where the venv lives (default: <repo>/.venv)
#   DDML_PYTHON           interpreter used to create it (default: python3)
#   DDML_TORCH_INDEX_URL  optional pip index for torch (e.g. PyTorch's CPU
#                         wheel index on a machine where PyPI serves CUDA)
#   MAX_JOBS              parallel compile jobs for mmcv (default: nproc)
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

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment at $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

# Is the stack there in the pinned versions, with mmcv's compiled ops?
stack_ok() {
  "$py" - "$MMENGINE" "$MMCV" "$MMDET" "$MMDET3D" "$NUMPY" <<'PY' 2>/dev/null
import sys
want = dict(zip(['mmengine', 'mmcv', 'mmdet', 'mmdet3d', 'numpy'], sys.argv[1:]))
import importlib
for name, version in want.items():
    mod = importlib.import_module(name)
    assert mod.__version__ == version, (name, mod.__version__, version)
import torch, scipy, shapely, matplotlib, tqdm, pytest, pkg_resources  # noqa
import mmcv.ops  # noqa: the compiled ops must load
PY
}

if stack_ok; then
  say "stack already installed in $venv (torch $("$py" -c 'import torch; print(torch.__version__)'), mmcv $MMCV with ops, mmdet $MMDET, mmdet3d $MMDET3D)"
else
  say "installing the pinned stack from $req into $venv"
  pip install -q --upgrade pip wheel "setuptools>=77,<82"
  if "$py" -c 'import torch' 2>/dev/null; then
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
  if ! "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV'" 2>/dev/null; then
    jobs=${MAX_JOBS:-$(nproc)}
    say "building mmcv==$MMCV from source with its ops (MMCV_WITH_OPS=1, $jobs jobs)."
    say "this takes about 25 minutes on 2 cores; it happens once per venv."
    start=$(date +%s)
    MMCV_WITH_OPS=1 MAX_JOBS=$jobs pip install --no-build-isolation "mmcv==$MMCV"
    took=$(( $(date +%s) - start ))
    if [ "$took" -lt 120 ]; then
      say "mmcv installed in $took s (pip reused a wheel it had built before)"
    else
      say "mmcv built in $(( took / 60 )) minutes"
    fi
  fi
  pip install -q "mmdet==$MMDET" "mmdet3d==$MMDET3D" "numpy==$NUMPY"
  stack_ok || { say "ERROR: the stack in $venv does not import after installation; see the pip output above"; exit 1; }
  say "stack installed"
fi

# The add-on itself, editable. A cached venv may point at an older clone,
# so re-link when `ddml` does not resolve to this repository.
where=$(cd / && "$py" -c 'import ddml, os; print(os.path.realpath(ddml.__file__))' 2>/dev/null || true)
case "$where" in
  "$repo"/*) say "ddml is installed from $repo" ;;
  *) say "installing ddml from $repo in editable mode"
     pip install -q --no-deps --no-build-isolation -e "$repo" ;;
esac
