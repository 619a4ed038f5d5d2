"""A full-size Waymo config at work on the synthetic Waymo data (issue 22,
item 4): PGD on the front camera, plain and ``ddml_``, trains and evaluates
with its own ``WaymoMono3DMetric`` (its val loop), with nothing changed but
what :func:`synthetic_options` lists: the data root (of the datasets and of
the evaluator's info file), no pretrained backbone (no download), the
number of epochs, and here the input size. The configs' evaluators build as
they are (no ``metrics`` key that would make mmengine read one as an
``Evaluator``).

The test renders 6 train frames (2 with the config's ``load_interval=3``:
one batch, so 2 epochs are 2 iterations) and 3 val frames at 480x320 and
trains at that size. The issue's 50 iterations at the config's own input
(1248x832 from 1920x1280 frames) are the same run on larger data, with
``DDML_WAYMO_FULL_DATA`` (a ``kitti_format`` root, e.g. rendered by
``tools/make_demo_dataset.py --format waymo --scale 1 --num-train 450
--num-val 30``: 150 samples, 50 batches of 3) and ``DDML_WAYMO_FULL_EPOCHS``
(default 2; 1 there): the input then keeps the config's size, and the
training and evaluation times are printed (``pytest -s``).
"""
import math
import os
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
PGD = sorted((REPO / 'configs' / 'pgd').glob('*pgd_*waymoD3-fov-mono3d.py'))
#: Rendering scale and input size of the test (1920x1280 x 0.25).
SCALE, INPUT = 0.25, (480, 320)
FULL_DATA = os.environ.get('DDML_WAYMO_FULL_DATA')
EPOCHS = int(os.environ.get('DDML_WAYMO_FULL_EPOCHS', 2))


def synthetic_options(config: Path, data_root: str, epochs: int,
                      input_size: Optional[Tuple[int, int]] = None
                      ) -> List[str]:
    """``--cfg-options`` that point a Waymo config at other data.

    Args:
        config (Path): A ``*waymoD3-fov-mono3d.py`` config.
        data_root (str): The ``kitti_format`` root.
        epochs (int): Training epochs (evaluated after the last).
        input_size (tuple, optional): ``(w, h)`` of the resize steps;
            None keeps the config's.

    Returns:
        list[str]: ``key=value`` strings.
    """
    root = data_root.rstrip('/') + '/'
    model = 'model.detector' if config.name.startswith('ddml_') else 'model'
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]
    opts += [f'{ev}.ann_file={root}waymo_infos_val.pkl'
             for ev in ('val_evaluator', 'test_evaluator')]
    opts += [f'{model}.backbone.init_cfg=None',
             f'train_cfg.max_epochs={epochs}',
             f'train_cfg.val_interval={epochs}']
    if input_size is not None:
        w, h = input_size
        # RandomResize3D of the train (index 2) and test (1) pipelines
        opts += [f'train_dataloader.dataset.pipeline.2.scale=({w},{h})',
                 f'val_dataloader.dataset.pipeline.1.scale=({w},{h})']
    return opts


@pytest.fixture(scope='module')
def waymo_root(tmp_path_factory) -> Path:
    """6 train and 3 val frames of Waymo's three classes at 480x320 (or
    ``DDML_WAYMO_FULL_DATA``)."""
    if FULL_DATA:
        return Path(FULL_DATA)
    from ddml.data_tools.synthetic_waymo import make_waymo_dataset
    root = tmp_path_factory.mktemp('synthetic_waymo_full')
    make_waymo_dataset(root, 6, 3, seed=4, scale=SCALE, workers=1,
                       progress=False)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('config', PGD, ids=lambda p: p.name)
def test_full_waymo_config_trains_and_evaluates(config, waymo_root,
                                                tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ddml.analysis.runs import parse_cfg_options
    assert len(PGD) == 2
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(parse_cfg_options(synthetic_options(
        config, str(waymo_root), EPOCHS,
        input_size=None if FULL_DATA else INPUT)))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers = 0 if not FULL_DATA else loader.num_workers
        loader.persistent_workers = bool(loader.num_workers)
    cfg.train_cfg.val_interval = EPOCHS + 1  # evaluated below, timed apart
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.save_last = False
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - start
    hub = runner.message_hub
    assert runner.iter >= 2
    assert math.isfinite(hub.get_scalar('train/loss').current())
    if cfg.model.type == 'DepthDiscriminativeDetector':
        for key in ('train/loss_qi', 'train/loss_obj_depth'):
            assert math.isfinite(hub.get_scalar(key).current()), key
    start = time.perf_counter()
    metrics = runner.val()  # the config's val loop and WaymoMono3DMetric
    val_s = time.perf_counter() - start
    for cls in ('Vehicle', 'Pedestrian', 'Cyclist'):
        for key in (f'{cls}/LEVEL_1/AP', f'{cls}/LEVEL_2/APH',
                    f'{cls}/LEVEL_2/LET-AP', f'{cls}/LEVEL_2/LET-APL'):
            value = metrics[f'Waymo/{key}']
            assert math.isfinite(value) and 0.0 <= value <= 1.0, key
    frames = len(runner.val_dataloader.dataset)
    print(f'{config.name}: {runner.iter} iterations in {train_s:.0f} s '
          f'({train_s / runner.iter:.1f} s an iteration), evaluation of '
          f'{frames} frames in {val_s:.0f} s; Vehicle LET-3D-AP '
          f'{metrics["Waymo/Vehicle/LEVEL_2/LET-AP"]:.3f}')
