"""A hook for tests: the process kills itself (SIGKILL) after an iteration.

It simulates a crash or a pre-empted job between two checkpoints; nothing
is flushed or saved on the way out. A config uses it with
``custom_imports = dict(imports=['ddml', 'ddml.testing.hooks'])``.
"""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ['KillAtIterHook']


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL the training process once ``iteration`` iterations ran.

    It runs after every other hook of that iteration (logging included).

    Args:
        iteration (int): 1-based iteration after which the process dies.
    """

    priority = 'LOWEST'

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
