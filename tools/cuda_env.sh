#!/usr/bin/env bash
# CUDA detection for tools/install_stack.sh (`make install`).
#
# Sourced by install_stack.sh; run on its own it prints what `make install`
# would do on this machine and exits non-zero where it would stop:
#
#   bash tools/cuda_env.sh [TORCH_CUDA]
#
# TORCH_CUDA is torch.version.cuda of an installed torch ("none" for a CPU
# build); leave it out when torch is not installed yet.
#
# Environment (all optional):
#   DDML_CUDA             auto (default): build CUDA ops when `nvidia-smi`
#                         works; 0: CPU path even with a GPU; 1: CUDA path
#                         even without a visible GPU (e.g. a container
#                         build; needs TORCH_CUDA_ARCH_LIST then)
#   CUDA_HOME, CUDA_PATH  the CUDA toolkit, looked up as torch's
#                         cpp_extension does (then `nvcc` on PATH, then
#                         /usr/local/cuda), see ddml_cuda_home
#   DDML_CUDA_DEFAULT_HOME  toolkit tried last (default: /usr/local/cuda)
#   TORCH_CUDA_ARCH_LIST  compute capabilities to compile mmcv for; default:
#                         those of the local GPUs (nvidia-smi)
#   DDML_TORCH_INDEX_URL  pip index for a CUDA torch; default: PyTorch's
#                         wheel index for the CUDA version of nvcc

DDML_TORCH_VERSION=${DDML_TORCH_VERSION:-2.13.0}
DDML_TORCH_INDEX_BASE=${DDML_TORCH_INDEX_BASE:-https://download.pytorch.org/whl}

# Whether this install should build mmcv's CUDA ops (status 0) or not.
ddml_cuda_wanted() {
  case "${DDML_CUDA:-auto}" in
    0|no|off|false|cpu) return 1 ;;
    1|yes|on|true|cuda) return 0 ;;
    auto|'')
      if command -v nvidia-smi >/dev/null 2>&1 \
           && nvidia-smi >/dev/null 2>&1; then
        return 0
      fi
      return 1 ;;
    *) printf 'DDML_CUDA=%s is not valid: use auto (default), 0 (CPU) or 1 (CUDA)\n' \
         "$DDML_CUDA" >&2
       return 2 ;;
  esac
}

# "12.8" -> "128" for ordering: major * 100 + minor.
ddml_version_key() {
  local major=${1%%.*} minor=${1#*.}
  minor=${minor%%.*}
  printf '%d\n' $(( 10#$major * 100 + 10#$minor ))
}

# Highest CUDA version the driver supports, from nvidia-smi's banner
# ("CUDA Version: 12.8"); prints nothing when it cannot be read.
ddml_driver_cuda() {
  nvidia-smi 2>/dev/null \
    | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' \
    | head -n 1 || true
}

# Compute capabilities of the local GPUs, unique, as TORCH_CUDA_ARCH_LIST
# wants them ("8.6;9.0"); prints nothing when nvidia-smi cannot tell
# (drivers before the compute_cap query field).
ddml_compute_caps() {
  local caps
  caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader \
           2>/dev/null | tr -d ' \r' | grep -E '^[0-9]+\.[0-9]+$' \
           | sort -t. -k1,1n -k2,2n -u | paste -sd';' -) || true
  printf '%s\n' "$caps"
}

# Whether a folder is a CUDA toolkit root: bin/nvcc and the runtime headers
# (include/, or targets/<arch>/include/ as conda lays them out).
ddml_is_toolkit() {
  [ -x "$1/bin/nvcc" ] || return 1
  [ -e "$1/include/cuda_runtime.h" ] && return 0
  compgen -G "$1/targets/*/include/cuda_runtime.h" >/dev/null
}

# The CUDA toolkit root for mmcv's build, looked up as
# torch.utils.cpp_extension does (CUDA_HOME, CUDA_PATH, dirname of `nvcc`
# on PATH, /usr/local/cuda), except that an `nvcc` on PATH outside a
# toolkit (a wrapper script or a symlink in /usr/local/bin) leads to the
# toolkit it stands for; install_stack.sh passes the result to the build as
# CUDA_HOME. Prints nothing when there is none.
ddml_cuda_home() {
  local nvcc='' home default=${DDML_CUDA_DEFAULT_HOME:-/usr/local/cuda}
  if [ -n "${CUDA_HOME:-}" ]; then
    printf '%s\n' "$CUDA_HOME"
    return 0
  elif [ -n "${CUDA_PATH:-}" ]; then
    printf '%s\n' "$CUDA_PATH"
    return 0
  fi
  if nvcc=$(command -v nvcc 2>/dev/null); then
    home=$(dirname "$(dirname "$nvcc")")
    if ddml_is_toolkit "$home"; then
      printf '%s\n' "$home"
      return 0
    fi
    home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    if ddml_is_toolkit "$home"; then
      printf '%s\n' "$home"
      return 0
    fi
  fi
  if ddml_is_toolkit "$default"; then
    printf '%s\n' "$default"
  elif [ -n "$nvcc" ]; then
    dirname "$(dirname "$nvcc")"  # torch's guess; the plan reports it
  fi
  return 0
}

# CUDA version of an nvcc ("release 12.8, V12.8.93" -> 12.8).
ddml_nvcc_cuda() {
  "$1" --version 2>/dev/null \
    | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' \
    | head -n 1 || true
}

# Whether nvcc can compile for every capability of a TORCH_CUDA_ARCH_LIST;
# prints the ones it cannot. Passes when nvcc cannot list its targets
# (before CUDA 11), leaving the verdict to the build.
ddml_nvcc_missing_archs() {
  local nvcc=$1 list=$2 known cap code
  known=$("$nvcc" --list-gpu-arch 2>/dev/null) || return 0
  [ -n "$known" ] || return 0
  for cap in ${list//;/ }; do
    cap=${cap%%+PTX}
    code=compute_${cap//./}
    if ! printf '%s\n' "$known" | grep -qx "$code"; then
      printf '%s\n' "$cap"
    fi
  done
}

# Check the machine for a CUDA build of mmcv, before anything long runs.
#
#   ddml_cuda_plan [TORCH_CUDA]
#
# TORCH_CUDA: torch.version.cuda of the venv's torch, "none" for a CPU
# build, empty when torch is not installed yet. On success (status 0) sets
# DDML_DRIVER_CUDA (may be empty with DDML_CUDA=1 and no GPU),
# DDML_CUDA_HOME, DDML_NVCC, DDML_NVCC_CUDA, DDML_ARCH_LIST,
# DDML_TORCH_VARIANT (cu128) and DDML_TORCH_INDEX (the pip index for a CUDA
# torch). On failure prints what to install or which torch to pick on
# stderr and returns 1.
ddml_cuda_plan() {
  local torch_cuda=${1:-} missing example
  local cpu_hint='For a CPU-only install instead: DDML_CUDA=0 make install.'
  DDML_DRIVER_CUDA=$(ddml_driver_cuda)
  DDML_CUDA_HOME=$(ddml_cuda_home)
  DDML_NVCC=${DDML_CUDA_HOME:+$DDML_CUDA_HOME/bin/nvcc}
  DDML_NVCC_CUDA=
  DDML_ARCH_LIST=
  DDML_TORCH_VARIANT=
  DDML_TORCH_INDEX=
  local driver_note=''
  [ -z "$DDML_DRIVER_CUDA" ] \
    || driver_note=" (the driver supports CUDA <= $DDML_DRIVER_CUDA)"

  if [ -z "$DDML_NVCC" ] || [ ! -x "$DDML_NVCC" ]; then
    {
      echo "ERROR: this is a CUDA machine$driver_note, but nvcc, the CUDA"
      echo "compiler that builds mmcv's CUDA ops, was not found"
      echo "(looked at \$CUDA_HOME, \$CUDA_PATH, nvcc on PATH and"
      echo "/usr/local/cuda${DDML_NVCC:+; $DDML_NVCC does not exist})."
      case "$torch_cuda" in
        ''|none)
          example=12.8
          echo "Install a CUDA toolkit${DDML_DRIVER_CUDA:+ no newer than $DDML_DRIVER_CUDA} for which PyTorch publishes"
          echo "torch==$DDML_TORCH_VERSION wheels (e.g. $example), and point CUDA_HOME at it:" ;;
        *)
          example=$torch_cuda
          echo "The venv's torch was built with CUDA $torch_cuda: install the CUDA"
          echo "toolkit $torch_cuda and point CUDA_HOME at it:" ;;
      esac
      echo "  export CUDA_HOME=/usr/local/cuda-$example"
      echo "  export PATH=\$CUDA_HOME/bin:\$PATH"
      echo "then run make install again. $cpu_hint"
    } >&2
    return 1
  fi
  if ! ddml_is_toolkit "$DDML_CUDA_HOME"; then
    case "$torch_cuda" in ''|none) example=12.8 ;; *) example=$torch_cuda ;; esac
    {
      echo "ERROR: $DDML_CUDA_HOME is not a CUDA toolkit root: it has bin/nvcc but"
      echo "no include/cuda_runtime.h, so mmcv's CUDA ops would not compile."
      echo "Point CUDA_HOME at the toolkit root, e.g."
      echo "  export CUDA_HOME=/usr/local/cuda-$example"
      echo "then run make install again. $cpu_hint"
    } >&2
    return 1
  fi
  DDML_NVCC_CUDA=$(ddml_nvcc_cuda "$DDML_NVCC")
  if [ -z "$DDML_NVCC_CUDA" ]; then
    echo "ERROR: could not read the CUDA version of $DDML_NVCC (\`$DDML_NVCC --version\` has no 'release X.Y'); check the CUDA toolkit at $DDML_CUDA_HOME or point CUDA_HOME at another one." >&2
    return 1
  fi
  DDML_TORCH_VARIANT=cu${DDML_NVCC_CUDA//./}
  DDML_TORCH_INDEX=${DDML_TORCH_INDEX_URL:-$DDML_TORCH_INDEX_BASE/$DDML_TORCH_VARIANT}

  if [ -n "$DDML_DRIVER_CUDA" ] && [ "$(ddml_version_key "$DDML_NVCC_CUDA")" -gt \
       "$(ddml_version_key "$DDML_DRIVER_CUDA")" ]; then
    {
      echo "ERROR: nvcc at $DDML_NVCC is CUDA $DDML_NVCC_CUDA but the NVIDIA driver"
      echo "supports CUDA <= $DDML_DRIVER_CUDA: code built with it would not run."
      echo "Update the driver, or install a CUDA toolkit <= $DDML_DRIVER_CUDA and point"
      echo "CUDA_HOME at it (with the torch build for that CUDA version). $cpu_hint"
    } >&2
    return 1
  fi

  case "$torch_cuda" in
    '') ;;  # torch not installed yet: install.sh picks $DDML_TORCH_INDEX
    none)
      {
        echo "ERROR: the venv's torch is a CPU build, so mmcv cannot be built"
        echo "with CUDA ops. Install the CUDA $DDML_NVCC_CUDA build (matching nvcc at $DDML_NVCC):"
        echo "  <venv>/bin/python -m pip install --force-reinstall torch==$DDML_TORCH_VERSION --index-url $DDML_TORCH_INDEX"
        echo "or remove the venv and run make install again. $cpu_hint"
      } >&2
      return 1 ;;
    *)
      if [ "$(ddml_version_key "$torch_cuda")" -ne \
           "$(ddml_version_key "$DDML_NVCC_CUDA")" ]; then
        {
          echo "ERROR: the venv's torch was built with CUDA $torch_cuda but nvcc at"
          echo "$DDML_NVCC is CUDA $DDML_NVCC_CUDA; mmcv's CUDA ops must be compiled with"
          echo "the CUDA version of torch (same major.minor). Either install the CUDA"
          echo "toolkit $torch_cuda and point CUDA_HOME at it, e.g."
          echo "  export CUDA_HOME=/usr/local/cuda-$torch_cuda"
          echo "or pick the torch build for CUDA $DDML_NVCC_CUDA:"
          echo "  <venv>/bin/python -m pip install --force-reinstall torch==$DDML_TORCH_VERSION --index-url $DDML_TORCH_INDEX"
          echo "then run make install again. $cpu_hint"
        } >&2
        return 1
      fi ;;
  esac

  DDML_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$(ddml_compute_caps)}
  if [ -z "$DDML_ARCH_LIST" ]; then
    {
      echo "ERROR: could not read the GPUs' compute capability (nvidia-smi"
      echo "--query-gpu=compute_cap needs a driver >= 510). Set the capabilities to"
      echo "compile mmcv for, e.g. TORCH_CUDA_ARCH_LIST=8.6 for an RTX 30xx or"
      echo "TORCH_CUDA_ARCH_LIST='8.0;9.0' for A100 and H100, and run make install again."
    } >&2
    return 1
  fi
  missing=$(ddml_nvcc_missing_archs "$DDML_NVCC" "$DDML_ARCH_LIST" | paste -sd' ' -)
  if [ -n "$missing" ]; then
    {
      echo "ERROR: nvcc $DDML_NVCC_CUDA at $DDML_NVCC cannot compile for compute"
      echo "capability $missing (TORCH_CUDA_ARCH_LIST=$DDML_ARCH_LIST). Install a newer CUDA"
      echo "toolkit that supports it (and the torch build for that CUDA version),"
      echo "or set TORCH_CUDA_ARCH_LIST to capabilities it supports."
    } >&2
    return 1
  fi
  return 0
}

# One line per finding, for the install log and `bash tools/cuda_env.sh`.
ddml_cuda_report() {
  echo "driver CUDA: ${DDML_DRIVER_CUDA:-unknown (no GPU visible)}"
  echo "CUDA toolkit: ${DDML_CUDA_HOME} (nvcc CUDA ${DDML_NVCC_CUDA})"
  echo "TORCH_CUDA_ARCH_LIST: ${DDML_ARCH_LIST}"
  echo "torch build: ${DDML_TORCH_VARIANT} (index ${DDML_TORCH_INDEX})"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  ddml_cuda_wanted
  case $? in
    0) ;;
    1) echo "no CUDA GPU (or DDML_CUDA=0): make install takes the CPU path"
       exit 0 ;;
    *) exit 2 ;;
  esac
  ddml_cuda_plan "${1:-}" || exit 1
  echo "CUDA path: mmcv is built with MMCV_WITH_OPS=1 FORCE_CUDA=1"
  ddml_cuda_report
fi
