"""Training and testing: the entry points :mod:`ddml.engine.train` and
:mod:`ddml.engine.test` (``python -m ddml.engine.train CONFIG``), which
``tools/train.py`` and ``tools/test.py`` call, and their options, configs
and Runner (:mod:`ddml.engine.launch`).

The entry-point modules are not imported here, so that ``python -m`` runs
them without importing them twice.
"""
from .diagnostics_hook import AuxLossDiagnosticsHook
from .launch import (build_runner, check_evaluator_available, test_config,
                     test_parser, train_config, train_parser)

__all__ = [
    'AuxLossDiagnosticsHook', 'build_runner', 'check_evaluator_available',
    'test_config', 'test_parser', 'train_config', 'train_parser'
]
