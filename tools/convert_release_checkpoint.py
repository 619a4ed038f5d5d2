"""Convert a checkpoint of MonoDLE's or DDML's release for configs/monodle.

Turns the ``model_state`` that the release's trainer saves
(xinzhuma/monodle or mingyuShin/DDML-M3DOD, ``lib/helpers/save_helper.py``)
into an mmengine checkpoint that the config's model loads with a strict key
match and that gives the release's outputs::

    python tools/convert_release_checkpoint.py RELEASE.pth OUT.pth \\
        [--config CONFIG] [--meanshape]
    python tools/test.py CONFIG OUT.pth

Without ``--config``: the MonoDLE 3-class config, or the ddml-release
3-class config when the checkpoint has DDML's ``obj_depth`` head. The logic
is :mod:`ddml.engine.release_checkpoint`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (one line, too, when ddml is missing)


if __name__ == '__main__':
    # a user's mistake: one line on stderr, exit status 2
    sys.exit(cli.run_module('ddml.engine.release_checkpoint'))
