"""Test and evaluate a monocular 3D detector with mmdet3d and ddml.

Same options as mmdet3d's tools/test.py, e.g.::

    python tools/test.py <config> <checkpoint> [--show-dir vis]

The logic is the package's entry point :func:`ddml.engine.test.main`
(also ``python -m ddml.engine.test``).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (one line, too, when ddml is missing)


if __name__ == '__main__':
    # a user's mistake: one line on stderr, exit status 2
    cli.run_module('ddml.engine.test')  # returns the runner / metrics
