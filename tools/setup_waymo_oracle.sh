#!/usr/bin/env bash
# Build the Waymo "oracle" environment: Waymo's own metric op
# (waymo_open_dataset.metrics.ops.py_metrics_ops.detection_metrics, a
# TensorFlow custom op) in a virtual environment of its own, so that
# tests/test_evaluation/test_waymo_oracle.py can compare ddml's numpy
# Waymo metric against it.  Nothing here touches the main environment.
#
# Usage:  tools/setup_waymo_oracle.sh          (or: make waymo-oracle)
# Env:    DDML_WAYMO_ORACLE_VENV   venv path
#                                  (default $HOME/.cache/ddml/waymo-oracle-venv)
#         DDML_WAYMO_ORACLE_PYTHON interpreter for the venv, Python 3.8-3.11
#                                  (default: first of python3.11 python3.10
#                                  python3.9 python3 on PATH)
#
# Idempotent: when the venv already imports the op with the pinned
# versions it only says so and exits (a few seconds).
set -euo pipefail

VENV="${DDML_WAYMO_ORACLE_VENV:-$HOME/.cache/ddml/waymo-oracle-venv}"
TF_VERSION="2.13.1"
WOD_PACKAGE="waymo-open-dataset-tf-2-12-0"
WOD_VERSION="1.6.7"

log() { echo "[setup_waymo_oracle] $*"; }

check() {
    # Succeeds when the venv has the pinned packages and the op loads.
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$TF_VERSION" "$WOD_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
tf_version, wod_version = sys.argv[1:3]
assert version('tensorflow') == tf_version, version('tensorflow')
assert version('waymo-open-dataset-tf-2-12-0') == wod_version
import numpy
assert tuple(int(v) for v in numpy.__version__.split('.')[:2]) < (1, 25)
from waymo_open_dataset.metrics.ops import py_metrics_ops  # noqa: F401
assert hasattr(py_metrics_ops, 'detection_metrics')
PY
}

if check; then
    log "oracle venv at $VENV is ready (tensorflow==$TF_VERSION," \
        "$WOD_PACKAGE==$WOD_VERSION); nothing to do."
    exit 0
fi

PY="${DDML_WAYMO_ORACLE_PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 python3.10 python3.9 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c \
            'import sys, venv; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 11))' \
            2>/dev/null; then
            PY="$(command -v "$cand")"
            break
        fi
    done
fi
if [ -z "$PY" ]; then
    log "ERROR: no Python 3.8-3.11 with the venv module found" \
        "(tensorflow==$TF_VERSION supports only those); set DDML_WAYMO_ORACLE_PYTHON."
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV with $PY ($("$PY" --version 2>&1))"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
else
    log "reusing existing venv $VENV"
fi

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
log "installing tensorflow==$TF_VERSION, numpy<1.25, immutabledict==2.2.0" \
    "(large download, several minutes)"
"${PIP[@]}" install "tensorflow==$TF_VERSION" "numpy<1.25" "immutabledict==2.2.0"
log "installing $WOD_PACKAGE==$WOD_VERSION without dependencies" \
    "(its pins conflict with tensorflow 2.13; the metric op does not need them)"
"${PIP[@]}" install --no-deps "$WOD_PACKAGE==$WOD_VERSION"

if check; then
    log "done: $VENV/bin/python imports waymo_open_dataset.metrics.ops.py_metrics_ops"
else
    log "ERROR: the venv was built but the metric op does not load; run:"
    log "  $VENV/bin/python -c 'from waymo_open_dataset.metrics.ops import py_metrics_ops'"
    exit 1
fi
