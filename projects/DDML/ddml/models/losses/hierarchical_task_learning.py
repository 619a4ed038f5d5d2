"""Hierarchical task learning (HTL): loss weights that follow pre-tasks.

HTL comes from GUPNet (Y. Lu, X. Ma, L. Yang, T. Zhang, Y. Liu, Q. Chu,
J. Yan, W. Ouyang, "Geometry Uncertainty Projection Network for Monocular
3D Object Detection", ICCV 2021, Sec. 3.4; release
github.com/SuperMHP/GUPNet, ``code/lib/losses/loss_function.py``). It is
*not* part of MonoDLE's paper or release (whose trainer sums its seven
terms with weight 1); :class:`MonoDLEHead` offers it as an option.

A task starts to be trained only once the tasks it depends on (its
pre-tasks) have converged. With the epoch-mean losses ``L_j`` of the last
``K`` epochs, the trend of task ``j`` at epoch ``t`` is the mean decrease
over two epochs, ``DF_j(t) = mean_m (L_j(m) - L_j(m + 2))`` over the
window, its learning situation is ``ls_j(t) = 1 - DF_j(t) / DF_j(K)``
(``DF_j(K)``: the trend of the first full window) and the weight of a task
``i`` with pre-tasks ``P(i)`` is

.. math::

    w_i(t) = \\Big(\\min\\big(\\tfrac{t - K}{T - K}, 1\\big)\\Big)^{
        1 - \\prod_{j \\in P(i)} ls_j(t)}

(``T``: the number of training epochs); tasks without pre-tasks keep
weight 1, tasks with pre-tasks have weight 0 until ``K`` epochs are known.
As in the release, ``DF / DF(K)`` is floored at 0; here ``ls`` is also
capped to ``[0, 1]`` (the release lets it go negative when a pre-task
falls faster than in its first window, which can raise a weight above 1)
and a window is the ``K`` most recent *complete* epochs (the release
computes an extra pass over the data before training as epoch "-1").
"""
import math
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub
from torch import Tensor

from mmdet3d.registry import MODELS

__all__ = ['HierarchicalTaskLearning', 'MONODLE_TASK_GRAPH']

#: GUPNet's task hierarchy, on the names of MonoDLE's loss terms.
MONODLE_TASK_GRAPH: Dict[str, Sequence[str]] = {
    'heatmap': (),
    'offset_2d': (),
    'size_2d': (),
    'offset_3d': ('size_2d', 'offset_2d'),
    'size_3d': ('size_2d', 'offset_2d'),
    'heading': ('size_2d', 'offset_2d'),
    'depth': ('size_2d', 'size_3d', 'offset_2d'),
}

_TINY = 1e-12


@MODELS.register_module()
class HierarchicalTaskLearning(nn.Module):
    """Per-epoch loss weights of GUPNet's hierarchical task learning.

    Call it once per training iteration with the unweighted loss terms; it
    returns the weights to multiply them by. It accumulates the terms over
    the current epoch (read from mmengine's message hub, which
    ``EpochBasedTrainLoop`` updates; an iteration-based loop stays at epoch
    0, where the dependent tasks have weight 0) and recomputes the weights
    when a new epoch starts. Its state is kept in buffers, so it is saved
    in checkpoints and restored on ``--resume``; epoch means are averaged
    over processes when training is distributed.

    Args:
        pre_tasks (Mapping[str, Sequence[str]], optional): Task -> its
            pre-tasks. Defaults to :data:`MONODLE_TASK_GRAPH`.
        stat_epochs (int): Window ``K`` of epoch means, >= 3. Defaults to 5
            (GUPNet).
        total_epochs (int, optional): ``T``. Defaults to None: the
            runner's ``max_epochs`` from the message hub.
    """

    def __init__(self,
                 pre_tasks: Optional[Mapping[str, Sequence[str]]] = None,
                 stat_epochs: int = 5,
                 total_epochs: Optional[int] = None) -> None:
        super().__init__()
        graph = dict(MONODLE_TASK_GRAPH if pre_tasks is None else pre_tasks)
        self.tasks = list(graph)
        for task, pres in graph.items():
            unknown = [p for p in pres if p not in graph]
            if unknown or task in pres:
                raise ValueError(
                    f'HierarchicalTaskLearning.pre_tasks[{task!r}] names '
                    f'{unknown or [task]}, which must be other tasks of '
                    f'the graph ({self.tasks})')
        self.pre_tasks = {t: tuple(graph[t]) for t in self.tasks}
        if not isinstance(stat_epochs, int) or stat_epochs < 3:
            raise ValueError('HierarchicalTaskLearning.stat_epochs must be '
                             f'an int >= 3, got {stat_epochs!r}')
        if total_epochs is not None and total_epochs <= stat_epochs:
            raise ValueError('HierarchicalTaskLearning.total_epochs must '
                             f'exceed stat_epochs ({stat_epochs}), got '
                             f'{total_epochs!r}')
        self.stat_epochs = stat_epochs
        self.total_epochs = total_epochs
        n = len(self.tasks)
        self.register_buffer('history', torch.zeros(stat_epochs, n))
        self.register_buffer('num_history', torch.zeros((), dtype=torch.long))
        self.register_buffer('init_trend', torch.zeros(n))
        self.register_buffer('has_init', torch.zeros((), dtype=torch.bool))
        self.register_buffer('epoch_sum',
                             torch.zeros(n, dtype=torch.float64))
        self.register_buffer('epoch_count', torch.zeros((),
                                                        dtype=torch.long))
        self.register_buffer('current_epoch',
                             torch.full((), -1, dtype=torch.long))
        self.register_buffer('weights', self._initial_weights())

    def _initial_weights(self) -> Tensor:
        return torch.tensor([0. if self.pre_tasks[t] else 1.
                             for t in self.tasks])

    def _total_epochs(self) -> int:
        if self.total_epochs is not None:
            return int(self.total_epochs)
        total = MessageHub.get_current_instance().get_info('max_epochs')
        if not isinstance(total, int) or total <= self.stat_epochs:
            raise ValueError(
                'HierarchicalTaskLearning needs total_epochs: set it, or '
                'train with an EpochBasedTrainLoop whose max_epochs '
                f'(got {total!r}) exceeds stat_epochs={self.stat_epochs}')
        return total

    def _push_epoch_mean(self) -> None:
        mean = (self.epoch_sum / self.epoch_count.clamp(min=1)).float()
        if get_world_size() > 1:
            all_reduce(mean, op='mean')
        self.history.copy_(torch.cat([self.history[1:], mean[None]]))
        self.num_history.add_(1).clamp_(max=self.stat_epochs)
        self.epoch_sum.zero_()
        self.epoch_count.zero_()

    def compute_weights(self, epoch: int) -> Tensor:
        """The weights of ``epoch`` from the stored epoch means.

        Args:
            epoch (int): 0-based epoch index ``t``.

        Returns:
            Tensor: One weight per task (order of :attr:`tasks`).
        """
        if int(self.num_history) < self.stat_epochs:
            return self._initial_weights().to(self.history.device)
        trend = (self.history[:-2] - self.history[2:]).mean(0)
        if not bool(self.has_init):
            self.init_trend.copy_(trend)
            self.has_init.fill_(True)
        ratio = trend.clamp(min=0) / self.init_trend.clamp(min=_TINY)
        situation = (1. - ratio).clamp(0., 1.)
        span = self._total_epochs() - self.stat_epochs
        progress = min(max((epoch - self.stat_epochs) / span, 0.), 1.)
        weights = torch.ones_like(trend)
        for i, task in enumerate(self.tasks):
            pres = self.pre_tasks[task]
            if not pres:
                continue
            control = math.prod(
                float(situation[self.tasks.index(p)]) for p in pres)
            weights[i] = progress**(1. - control)
        return weights

    def forward(self,
                losses: Mapping[str, Tensor],
                epoch: Optional[int] = None) -> Dict[str, Tensor]:
        """Record this iteration's loss terms and return the weights.

        Args:
            losses (Mapping[str, Tensor]): Unweighted scalar loss of every
                task (more keys are ignored).
            epoch (int, optional): Current 0-based epoch. Defaults to
                None: the message hub's ``epoch`` (0 when unset).

        Returns:
            dict[str, Tensor]: Weight of every task (scalars, no gradient).
        """
        missing = [t for t in self.tasks if t not in losses]
        if missing:
            raise KeyError(f'HierarchicalTaskLearning got no loss for tasks '
                           f'{missing}; it weights {self.tasks}')
        if self.training:
            if epoch is None:
                epoch = MessageHub.get_current_instance().get_info(
                    'epoch', 0)
            epoch = int(epoch)
            if epoch != int(self.current_epoch):
                if int(self.epoch_count) > 0:
                    self._push_epoch_mean()
                self.current_epoch.fill_(epoch)
                self.weights.copy_(self.compute_weights(epoch))
            values = torch.stack(
                [losses[t].detach().reshape(()) for t in self.tasks])
            if bool(torch.isfinite(values).all()):  # skip a broken batch
                self.epoch_sum.add_(values.to(self.epoch_sum))
                self.epoch_count.add_(1)
        return {t: self.weights[i] for i, t in enumerate(self.tasks)}
