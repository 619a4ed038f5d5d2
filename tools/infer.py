"""Monocular 3D detection on one's own images, with one's own intrinsics.

Per image, a picture with the projected 3D boxes (mmdet3d's visualiser)
and a JSON of the boxes (camera frame, metres) in ``--out-dir``::

    python tools/infer.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \\
        (--calib KITTI_CALIB [...] | --cam2img fx,fy,cx,cy) --out-dir DIR \\
        [--score-thr 0.3] [--device cpu] [--cfg-options KEY=VALUE ...]

Every monocular config here works, ``ddml_*`` included (the wrapper
predicts as its detector, and its checkpoint also loads into the plain
config). The logic is :mod:`ddml.engine.infer` (also
``python -m ddml.engine.infer``) and :mod:`ddml.apis.inference`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (one line, too, when ddml is missing)


if __name__ == '__main__':
    # a user's mistake: one line on stderr, exit status 2
    sys.exit(cli.run_module('ddml.engine.infer'))
