"""Where MonoDLE's release drops its learning rate, against its own code.

The release's yaml says ``decay_list: [90, 120]``, but its trainer steps the
step scheduler only after the warm-up epochs
(``lib/helpers/trainer_helper.py:71-74``: ``if warmup_lr_scheduler is not
None and epoch < 5: warmup_lr_scheduler.step() else:
lr_scheduler.step()``), so the ``LambdaLR`` of
``lib/helpers/scheduler_helper.py:6-18`` counts 5 epochs late and the x0.1
drops land on epochs 95 and 125 (0-based: the 96th and 126th epoch train at
the lower rate). The release's schedulers are built here from its source
(``../shared/reference``; the test skips with the reason when it is
absent), stepped by that rule, and compared epoch by epoch with the
schedule of configs/monodle with ``MILESTONES`` merged in, built by
mmengine from the config and stepped once an epoch as its
``ParamSchedulerHook`` does.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'monodle' / \
    'monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'
#: The release's effective milestones, as configs/monodle sets them.
MILESTONES = {'param_scheduler.1.milestones': [95, 125]}


def _release_lrs(base_lr: float, epochs: int) -> list:
    """The lr of every epoch of the release's training loop."""
    from ddml.testing.reference import (import_release_module,
                                        require_release)
    require_release('monodle')
    helper = import_release_module('monodle', 'lib.helpers.scheduler_helper')
    module = torch.nn.Conv2d(2, 2, 1)
    # the release's two parameter groups (optimizer_helper.py)
    optimizer = torch.optim.Adam([
        dict(params=[module.bias], weight_decay=0),
        dict(params=[module.weight], weight_decay=1e-5)
    ], lr=base_lr)
    lr_scheduler, warmup = helper.build_lr_scheduler(
        dict(warmup=True, decay_rate=0.1, decay_list=[90, 120]), optimizer,
        last_epoch=-1)
    lrs = []
    for epoch in range(epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()  # one "epoch" of training
        # trainer_helper.py:71-74
        if warmup is not None and epoch < 5:
            warmup.step()
        else:
            lr_scheduler.step()
    return lrs


def _config_lrs(cfg: Config) -> list:
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    module = torch.nn.Conv2d(2, 2, 1)
    wrapper = build_optim_wrapper(module, cfg.optim_wrapper)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper.optimizer))
        for s in cfg.param_scheduler
    ]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(wrapper.param_groups[0]['lr'])
        wrapper.optimizer.step()
        for s in schedulers:
            s.step()
    return lrs


def test_config_drops_the_lr_where_the_release_does():
    cfg = Config.fromfile(str(CONFIG))
    release = _release_lrs(1.25e-3, cfg.train_cfg.max_epochs)
    # the claim: the release trains epochs 90-94 at the full rate
    assert release[94] == pytest.approx(1.25e-3, rel=1e-9)
    assert release[95] == pytest.approx(1.25e-4, rel=1e-9)
    assert release[124] == pytest.approx(1.25e-4, rel=1e-9)
    assert release[125] == pytest.approx(1.25e-5, rel=1e-9)
    cfg.merge_from_dict(MILESTONES)
    ours = _config_lrs(cfg)
    assert len(ours) == len(release) == 140
    for epoch, (a, b) in enumerate(zip(ours, release, strict=True)):
        assert a == pytest.approx(b, rel=1e-6), (epoch, a, b)
