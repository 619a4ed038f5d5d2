"""Training and testing front ends (the logic of ``tools/train.py`` and
``tools/test.py``)."""
from .launch import (build_runner, check_evaluator_available, test_config,
                     test_main, test_parser, train_config, train_main,
                     train_parser)

__all__ = [
    'build_runner', 'check_evaluator_available', 'test_config', 'test_main',
    'test_parser', 'train_config', 'train_main', 'train_parser'
]
