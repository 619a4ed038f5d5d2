"""Train a monocular 3D detector with mmdet3d and ddml.

Same options as mmdet3d's tools/train.py, e.g.::

    python tools/train.py \
        configs/demo/ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py
    python tools/train.py <config> --work-dir work_dirs/x --resume

The logic is the package's entry point :func:`ddml.engine.train.main`
(also ``python -m ddml.engine.train``).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (one line, too, when ddml is missing)


if __name__ == '__main__':
    # a user's mistake: one line on stderr, exit status 2
    cli.run_module('ddml.engine.train')  # returns the runner / metrics
