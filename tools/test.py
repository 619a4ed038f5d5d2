"""Test and evaluate a monocular 3D detector with mmdet3d and ddml.

Same options as mmdet3d's tools/test.py, e.g.::

    python tools/test.py <config> <checkpoint> [--show-dir vis]

The logic is the package's entry point :func:`ddml.engine.test.main`
(also ``python -m ddml.engine.test``).
"""
from ddml.engine.cli import run
from ddml.engine.test import main

if __name__ == '__main__':
    run(main)  # a user's mistake: one line on stderr, exit status 2
