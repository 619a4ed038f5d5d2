"""Train a monocular 3D detector with mmdet3d and ddml.

Same options as mmdet3d's tools/train.py, e.g.::

    python tools/train.py \
        configs/demo/ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py
    python tools/train.py <config> --work-dir work_dirs/x --resume

The logic is the package's entry point :func:`ddml.engine.train.main`
(also ``python -m ddml.engine.train``).
"""
from ddml.engine.cli import run
from ddml.engine.train import main

if __name__ == '__main__':
    run(main)  # a user's mistake: one line on stderr, exit status 2
