"""Test and evaluate a monocular 3D detector with mmdet3d and ddml.

The package's testing entry point::

    python -m ddml.engine.test CONFIG CHECKPOINT [--show-dir DIR] ...

``tools/test.py`` (and through it ``tools/dist_test.sh``) calls
:func:`main`; the options are mmdet3d's (:func:`ddml.engine.launch.
test_parser`).
"""
from typing import List, Optional

from .launch import (build_runner, check_evaluator_available, test_config,
                     test_parser)

__all__ = ['main']


def main(argv: Optional[List[str]] = None) -> dict:
    """Parse the options, check the evaluator can run, and test.

    Args:
        argv (list[str], optional): The command-line arguments without the
            program name. None reads ``sys.argv``.

    Returns:
        dict: The metrics of the test loop.
    """
    cfg = test_config(test_parser().parse_args(argv))
    check_evaluator_available(cfg)
    return build_runner(cfg).test()


if __name__ == '__main__':
    from .cli import run
    run(main)  # a user's mistake: one line, exit status 2
