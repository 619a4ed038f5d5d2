"""Train a monocular 3D detector with mmdet3d and ddml.

The package's training entry point::

    python -m ddml.engine.train CONFIG [--work-dir DIR] [--resume] ...

``tools/train.py`` (and through it ``tools/dist_train.sh``) calls
:func:`main`; the options are mmdet3d's (:func:`ddml.engine.launch.
train_parser`).
"""
from typing import List, Optional

from mmengine.runner import Runner

from .launch import build_runner, train_config, train_parser

__all__ = ['main']


def main(argv: Optional[List[str]] = None) -> Runner:
    """Parse the options, build the Runner and train.

    Args:
        argv (list[str], optional): The command-line arguments without the
            program name, e.g. ``['cfg.py', '--work-dir', 'w']``. None reads
            ``sys.argv``.

    Returns:
        :obj:`Runner`: The runner after training.
    """
    runner = build_runner(train_config(train_parser().parse_args(argv)))
    runner.train()
    return runner


if __name__ == '__main__':
    from .cli import run
    run(main)  # a user's mistake: one line, exit status 2
