"""Test and evaluate a monocular 3D detector with mmdet3d and ddml.

Same options as mmdet3d's tools/test.py, e.g.::

    python tools/test.py <config> <checkpoint> [--show-dir vis]
"""
from ddml.engine import test_main

if __name__ == '__main__':
    test_main()
