"""MonoFlex's training stability, measured: the fixed head against variants
with one of mmdet3d 1.4's defects put back.

``tools/benchmark_monoflex_stability.py`` runs it for the figures of
docs/monoflex.md ("Stability"), e.g.::

    OMP_NUM_THREADS=1 python tools/benchmark_monoflex_stability.py \\
        --data /tmp/monoflex_small --iters 150 --work-dir /tmp/mf_stab

which renders ``--data`` when it has no infos (``--num-train`` frames of
the demo's layout at the demo's 1/3 scale), trains the MonoFlex demo
config (configs/demo/monoflex_r18-half_*) once per ``--variants`` entry at
one thread, and prints per variant the exception that stopped it (if
any), the first iteration with a non-finite loss, the gradient-norm
median / 95th percentile / max over the finite iterations, the mean loss
of the first and last 20 iterations, and a probe of the trained model at
the ground-truth cells of the first 32 training frames (the fixed head's
targets and decoding, batch statistics in the norm layers): the median
local-yaw error of the objects in bin 0 (|alpha| < 60 degrees) and of the
others, and the mean absolute error of the combined depth and of the
centre-keypoint depth.

Variants (each the fixed head with one upstream piece back):

* ``fixed``: ddml.compat.monoflex as configured;
* ``upstream-multibin``: ``loss_dir=MultiBinLoss`` (open-mmlab/
  mmdetection3d #1652: bin 0 only, NaN without an object in bin 0);
* ``upstream-ellipse``: mmdet3d's ``get_ellip_gaussian_2D`` for truncated
  objects (``sigma = diameter // 6``: NaN heatmap targets);
* ``upstream-keypoint-depth``: mmdet3d's ``MonoFlexCoder.keypoints2depth``
  on keypoints in mmdet3d's ``get_keypoints`` order (top face centre
  before bottom: the centre depth is the 100 m clamp; corners paired
  across edges).

With ``--keypoint-check`` it only decodes the exact keypoint targets of
the first 64 training frames through the fixed coder and mmdet3d's
(:func:`keypoint_depth_check`). tests/test_benchmarks/
test_monoflex_stability.py guards both with a 3-iteration run of ``fixed``
and the keypoint check on a few frames. Paths of the config are relative
to the repository root (the tool runs from there).
"""
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Union

import numpy as np

__all__ = ['VARIANTS', 'DEMO_CONFIG', 'ensure_data', 'train_run',
           'probe_model', 'summarise', 'keypoint_depth_check']

#: The MonoFlex demo config (relative to the repository root).
DEMO_CONFIG = ('configs/demo/'
               'monoflex_r18-half_secondfpn_1xb8-1200iter_demo-kitti-'
               'mono3d.py')
#: The fixed head and the variants with one upstream piece back.
VARIANTS = ('fixed', 'upstream-multibin', 'upstream-ellipse',
            'upstream-keypoint-depth')


@contextmanager
def _variant(name: str):
    """Put one upstream piece back for the duration of a run."""
    import ddml.compat.monoflex as monoflex
    from ddml.compat.monoflex_coder import FixedMonoFlexCoder
    from mmdet3d.models.task_modules import MonoFlexCoder
    from mmdet3d.models.utils import get_ellip_gaussian_2D
    saved = (monoflex.ellip_gaussian_target,
             FixedMonoFlexCoder.keypoints2depth)
    if name == 'upstream-ellipse':
        def upstream_ellipse(heatmap, center, radius_x, radius_y):
            return get_ellip_gaussian_2D(heatmap, list(center), radius_x,
                                         radius_y)
        monoflex.ellip_gaussian_target = upstream_ellipse
    elif name == 'upstream-keypoint-depth':
        def upstream_keypoint_depth(self, keypoints2d, dimensions, cam2imgs,
                                    downsample_ratio=1.0, **kwargs):
            # mmdet3d's get_keypoints puts the top face centre (index 8)
            # before the bottom one; ours is the release's order
            order = list(range(8)) + [9, 8]
            return MonoFlexCoder.keypoints2depth(self, keypoints2d[:, order],
                                                 dimensions, cam2imgs,
                                                 downsample_ratio)
        FixedMonoFlexCoder.keypoints2depth = upstream_keypoint_depth
    try:
        yield
    finally:
        monoflex.ellip_gaussian_target = saved[0]
        FixedMonoFlexCoder.keypoints2depth = saved[1]


def ensure_data(root: Path, num_train: int, num_val: int) -> Path:
    """Render the demo layout at the demo's scale into ``root`` unless its
    infos are there."""
    if not (root / 'kitti_infos_train.pkl').exists():
        from ddml.analysis.runs import DEMO_SCALE
        from ddml.data_tools.synthetic_kitti import (DEMO_LAYOUT,
                                                     make_demo_dataset)
        make_demo_dataset(root, num_train, num_val, seed=0, scale=DEMO_SCALE,
                          workers=1, progress=False, convert=True,
                          layout=DEMO_LAYOUT)
    return root


def train_run(variant: str, root: Path, work_dir: Path, iters: int,
              batch_size: int = 8, seed: int = 0,
              config: Union[str, Path] = DEMO_CONFIG) -> dict:
    """Train the MonoFlex demo config with ``variant`` for ``iters``
    iterations (the demo's warm-up and learning rate; gradient norms
    logged, not clipped) and return the logged scalars per iteration."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    import ddml  # noqa: F401
    torch.set_num_threads(1)
    cfg = Config.fromfile(str(config))
    if variant == 'upstream-multibin':
        cfg.model.bbox_head.loss_dir = dict(type='MultiBinLoss',
                                            loss_weight=1.0)
    loader = cfg.train_dataloader
    loader.batch_size = batch_size
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.dataset.data_root = str(root) + '/'
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=min(50, iters))
    ]
    cfg.optim_wrapper.clip_grad = dict(max_norm=1e12)  # log, do not clip
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = str(work_dir)
    # A visualizer of its own: mmengine hands back an existing instance of
    # the same name (another runner's, in one process), whose scalars go to
    # that runner's folder.
    cfg.visualizer.name = f'monoflex_stability:{Path(work_dir).resolve()}'
    crash, probe = None, {}
    with _variant(variant):
        runner = Runner.from_cfg(cfg)
        try:
            runner.train()
        except Exception as err:  # noqa: BLE001 - a crash is a result here
            crash = f'{type(err).__name__} at iteration {runner.iter + 1}'
        else:
            probe = probe_model(runner.model,
                                runner.train_dataloader.dataset)
    scalars = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))[-1]
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return dict(variant=variant, rows=[r for r in rows if 'loss' in r],
                probe=probe, crash=crash)


def probe_model(model, dataset, num: int = 32) -> dict:
    """Orientation and depth errors of ``model`` at the ground-truth cells
    of the first ``num`` frames of ``dataset`` (its pipeline; batch
    statistics in the norm layers, whose running averages move slowly over
    a short run: SECONDFPN's BN momentum is 0.01)."""
    import torch
    from mmengine.dataset import pseudo_collate
    head = model.bbox_head
    errs = dict(yaw_bin0=[], yaw_other=[], depth=[], centre_depth=[])
    with torch.no_grad():
        for start in range(0, min(num, len(dataset)), 8):
            items = [dataset[i] for i in
                     range(start, min(start + 8, num, len(dataset)))]
            data = model.data_preprocessor(pseudo_collate(items), False)
            samples = data['data_samples']
            metas = [s.metainfo for s in samples]
            cls, reg = head(model.extract_feat(data['inputs']), metas)
            _, t = head.get_targets([s.gt_instances_3d for s in samples],
                                    [s.gt_instances for s in samples],
                                    cls[0].shape, metas)
            if t['labels'].numel() == 0:
                continue
            b, cells = t['batch_idx'], t['cells']
            raw = reg[0][b, :, cells[:, 1], cells[:, 0]]
            p = head.bbox_coder.decode(raw, cells.float(), t['labels'], 1.0,
                                       t['cams'])
            _, alpha = head.bbox_coder.decode_orientation(
                p['orientations'], t['locations'])
            diff = (alpha - t['local_yaws'] + math.pi) % (2 * math.pi) - \
                math.pi
            in_bin0 = t['local_yaws'].abs() < math.pi / 3
            errs['yaw_bin0'] += diff[in_bin0].abs().tolist()
            errs['yaw_other'] += diff[~in_bin0].abs().tolist()
            errs['depth'] += (p['combined_depth'] -
                              t['depth']).abs().tolist()
            errs['centre_depth'] += (p['keypoints_depth'][:, 0] -
                                     t['depth']).abs().tolist()
    return dict(
        yaw_bin0_median_deg=math.degrees(float(np.median(
            errs['yaw_bin0']))) if errs['yaw_bin0'] else math.nan,
        yaw_other_median_deg=math.degrees(float(np.median(
            errs['yaw_other']))) if errs['yaw_other'] else math.nan,
        depth_mae=float(np.mean(errs['depth'])),
        centre_keypoint_depth_mae=float(np.mean(errs['centre_depth'])),
        objects=len(errs['depth']))


def summarise(run: dict) -> dict:
    """First non-finite loss, gradient-norm statistics, loss at the start
    and the end of a run."""
    rows = run['rows']
    loss = np.array([r['loss'] for r in rows], dtype=float)
    grad = np.array([r.get('grad_norm', np.nan) for r in rows], dtype=float)
    bad = np.flatnonzero(~np.isfinite(loss))
    finite = grad[np.isfinite(grad)]
    head = loss[:20][np.isfinite(loss[:20])]
    tail = loss[-20:][np.isfinite(loss[-20:])]
    return dict(
        variant=run['variant'],
        iters=len(rows),
        crash=run.get('crash'),
        first_nonfinite=int(rows[bad[0]]['iter']) if len(bad) else None,
        nonfinite=int(len(bad)),
        grad_median=float(np.median(finite)) if len(finite) else math.nan,
        grad_p95=float(np.percentile(finite, 95)) if len(finite) else
        math.nan,
        grad_max=float(finite.max()) if len(finite) else math.nan,
        loss_first20=float(head.mean()) if len(head) else math.nan,
        loss_last20=float(tail.mean()) if len(tail) else math.nan,
        **run.get('probe', {}))


def keypoint_depth_check(root: Path, num: int = 64,
                         flip: float = 0.5,
                         config: Union[str, Path] = DEMO_CONFIG) -> dict:
    """Depths from *exact* keypoint targets (the demo config's training
    pipeline on the first ``num`` frames of ``root``, flip ratio ``flip``):
    the absolute error of each of the three estimates, median and max over
    the objects whose keypoints of that estimate are visible, through the
    fixed coder and through mmdet3d's ``keypoints2depth`` (keypoints in
    ``get_keypoints``' order)."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    import ddml  # noqa: F401
    from mmdet3d.models.task_modules import MonoFlexCoder
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.set_num_threads(1)
    cfg = Config.fromfile(str(config))
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(root) + '/'
    for t in dataset_cfg.pipeline:
        if t['type'] == 'RandomFlip3D':
            t['flip_ratio_bev_horizontal'] = flip
    dataset = DATASETS.build(dataset_cfg)
    model = MODELS.build(cfg.model)
    head, coder = model.bbox_head, model.bbox_head.bbox_coder
    errors = dict(fixed=[], upstream=[])
    objects = truncated = 0
    for start in range(0, min(num, len(dataset)), 8):
        items = [dataset[i] for i in
                 range(start, min(start + 8, num, len(dataset)))]
        data = model.data_preprocessor(pseudo_collate(items), False)
        samples = data['data_samples']
        height, width = data['inputs']['imgs'].shape[-2:]
        _, t = head.get_targets([s.gt_instances_3d for s in samples],
                                [s.gt_instances for s in samples],
                                (len(samples), 1, height // 4, width // 4),
                                [s.metainfo for s in samples])
        kp = t['keypoints'] + t['cells'][:, None].float()
        upstream_order = list(range(8)) + [9, 8]
        for name, depth in (
                ('fixed', coder.keypoints2depth(kp, t['dims'], t['cams'],
                                                1.0)),
                ('upstream', MonoFlexCoder.keypoints2depth(
                    coder, kp[:, upstream_order], t['dims'], t['cams'],
                    1.0))):
            err = (depth - t['depth'][:, None]).abs()
            err[~t['keypoints_depth_valid']] = float('nan')
            errors[name].append(err)
        objects += len(t['labels'])
        truncated += int(t['trunc'].sum())
    out = dict(objects=objects, truncated=truncated)
    for name, parts in errors.items():
        err = torch.cat(parts).numpy()
        out[name] = dict(
            median_m=[round(float(np.nanmedian(err[:, k])), 3)
                      for k in range(3)],
            max_m=[round(float(np.nanmax(err[:, k])), 3) for k in range(3)])
    return out
