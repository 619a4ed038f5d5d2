"""A training hook that records how DDML's losses pull on the shared
feature map while a detector trains (issue 20: what does the QI loss add?).

Every ``interval`` iterations it takes the iteration's batch again and
writes one JSON line of :func:`ddml.analysis.gradient_diagnostics.
feature_gradient_stats` (gradient norm, share and cosine of each loss at
the descriptor feature map, feature and descriptor scale, object pairs
against the quasi-isometric bounds) to ``<work_dir>/<out_file>``. The
model's weights, buffers and gradients are left as they were, so a run
with the hook trains exactly as one without it. A config enables it with::

    custom_hooks = [dict(type='AuxLossDiagnosticsHook', interval=50)]
"""
import json
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet3d.registry import HOOKS
from ..models.defaults import QI_B, QI_EPS, QI_K

__all__ = ['AuxLossDiagnosticsHook']


@HOOKS.register_module()
class AuxLossDiagnosticsHook(Hook):
    """Write gradient shares and descriptor scale every ``interval``
    iterations (and after the first) of a ``DepthDiscriminativeDetector``.

    Args:
        interval (int): Iterations between two records. Defaults to 50.
        out_file (str): JSON-lines file in the work directory. Defaults to
            'aux_diagnostics.jsonl'.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50,
                 out_file: str = 'aux_diagnostics.jsonl') -> None:
        if int(interval) < 1:
            raise ValueError(f'AuxLossDiagnosticsHook interval must be >= 1, '
                             f'got {interval}')
        self.interval = int(interval)
        self.out_file = out_file
        self.path: Optional[str] = None

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if type(model).__name__ != 'DepthDiscriminativeDetector':
            raise TypeError('AuxLossDiagnosticsHook needs a '
                            'DepthDiscriminativeDetector model, got '
                            f'{type(model).__name__}; remove the hook from '
                            'custom_hooks or wrap the detector')
        self.path = osp.join(runner.work_dir, self.out_file)
        open(self.path, 'w').close()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        step = runner.iter + 1
        if data_batch is None or (step != 1 and step % self.interval):
            return
        from ..analysis.gradient_diagnostics import feature_gradient_stats
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        qi = model.qi_loss
        K, B, eps = (getattr(qi, 'K', QI_K), getattr(qi, 'B', QI_B),
                     getattr(qi, 'eps', QI_EPS))
        data = model.data_preprocessor(data_batch, True)
        stats = feature_gradient_stats(model, data['inputs'],
                                       data['data_samples'], K, B, eps)
        with open(self.path, 'a') as f:
            f.write(json.dumps(dict(iter=step, **stats)) + '\n')
