"""Options, configs and the Runner of training and testing.

The options are those of mmdet3d 1.4's own tools, so a user moves between
mmdet3d and this add-on without relearning anything. The entry points are
:func:`ddml.engine.train.main` (``python -m ddml.engine.train``, called by
``tools/train.py``) and :func:`ddml.engine.test.main`
(``python -m ddml.engine.test``, called by ``tools/test.py``).

A user's mistake (a missing config or checkpoint, an option the config or
the machine cannot honour) raises a :class:`ddml.engine.cli.UsageError`
(a ``FileNotFoundError``, ``ValueError`` or ``RuntimeError`` too), which
the command lines print as one line with exit status 2
(:func:`ddml.engine.cli.run`).
"""
import argparse
import logging
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .cli import (ArgumentParser, BadValueError, CfgOptionsAction,
                  SetupError, check_checkpoint, check_config,
                  check_config_and_checkpoint, check_out_dir, float_above,
                  float_in)

__all__ = [
    'train_parser', 'test_parser', 'train_config', 'test_config',
    'build_runner', 'check_evaluator_available'
]

_LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']
_VIS_TASKS = [
    'mono_det', 'multi-view_det', 'lidar_det', 'lidar_seg',
    'multi-modality_det'
]


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='directory for logs and outputs')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config, as key=value pairs merged '
        'into it, e.g. train_cfg.max_iters=10 or key="[a,b]" for lists '
        '(quotes needed, no white space)')
    parser.add_argument(
        '--launcher', choices=_LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def train_parser() -> argparse.ArgumentParser:
    """Argument parser of ``tools/train.py`` (mmdet3d's options)."""
    parser = ArgumentParser(
        description='Train a monocular 3D detector (mmdet3d + ddml)')
    parser.add_argument('config', help='train config file path')
    _common_arguments(parser)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic mixed precision training (needs CUDA)')
    parser.add_argument(
        '--sync_bn',
        choices=['none', 'torch', 'mmcv'],
        default='none',
        help='convert BatchNorm layers to SyncBatchNorm')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or without a path from the '
        'latest checkpoint in the work directory')
    return parser


def test_parser() -> argparse.ArgumentParser:
    """Argument parser of ``tools/test.py`` (mmdet3d's options)."""
    parser = ArgumentParser(
        description='Test (and evaluate) a monocular 3D detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    _common_arguments(parser)
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory (under work_dir/timestamp) for painted images')
    parser.add_argument(
        '--score-thr',
        type=float_in(0, 1),
        default=0.1,
        help='bbox score threshold')
    parser.add_argument(
        '--task',
        choices=_VIS_TASKS,
        default='mono_det',
        help='visualisation task (default: mono_det)')
    parser.add_argument(
        '--wait-time',
        type=float_above(0, inclusive=True),
        default=2, help='interval of --show (s)')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    return parser


def _load_config(args: argparse.Namespace,
                 checkpoint: Optional[str] = None) -> Config:
    if checkpoint is None:
        check_config(args.config)
    else:
        check_config_and_checkpoint(args.config, checkpoint)
    if args.work_dir is not None:
        check_out_dir(args.work_dir, '--work-dir')
    if args.launcher == 'pytorch' and not all(
            key in os.environ for key in ('RANK', 'WORLD_SIZE',
                                          'MASTER_ADDR', 'MASTER_PORT')):
        raise BadValueError(
            '--launcher pytorch: RANK, WORLD_SIZE, MASTER_ADDR and '
            'MASTER_PORT are not set; start the processes with '
            'tools/dist_train.sh CONFIG N (or dist_test.sh, torchrun), '
            'which sets them, or leave out --launcher')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    _use_gloo_without_cuda(cfg)
    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def _use_gloo_without_cuda(cfg: Config) -> None:
    """Distributed runs without CUDA need gloo, not the configs' nccl."""
    import torch
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', None)
    if (cfg.launcher == 'none' or dist_cfg is None
            or dist_cfg.get('backend') != 'nccl'
            or torch.cuda.is_available()):
        return
    print_log('CUDA is not available: using the gloo backend instead of '
              'nccl for distributed training', logger='current',
              level=logging.WARNING)
    dist_cfg['backend'] = 'gloo'


def train_config(args: argparse.Namespace) -> Config:
    """Config for training, with the command-line options applied.

    Args:
        args: Parsed :func:`train_parser` arguments.

    Returns:
        The config the Runner is built from.
    """
    if args.resume not in (None, 'auto'):
        check_checkpoint(args.resume, '--resume')
    cfg = _load_config(args)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise BadValueError(
                "--amp uses mmengine's AmpOptimWrapper, which needs a GPU "
                '(CUDA, NPU, MLU or MUSA); CUDA is not available here, so '
                'train without --amp')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in the config.',
                      logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise BadValueError(
                f'--amp needs optim_wrapper.type OptimWrapper, but the '
                f'config {args.config} uses {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.sync_bn != 'none':
        cfg.sync_bn = args.sync_bn
    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr', None)
        if not scale or 'base_batch_size' not in scale:
            raise BadValueError(
                f'--auto-scale-lr needs auto_scale_lr = dict(enable=False, '
                f'base_batch_size=...) in the config {args.config}')
        cfg.auto_scale_lr.enable = True
    # --resume: a path resumes from it, no path from the latest checkpoint
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def test_config(args: argparse.Namespace) -> Config:
    """Config for testing: ``load_from`` the checkpoint, and the
    visualisation hook set up for ``--show`` / ``--show-dir``.

    Args:
        args: Parsed :func:`test_parser` arguments.

    Raises:
        UsageError: A missing config or checkpoint (FileNotFoundError), an
            option the config cannot honour (ValueError).

    Returns:
        The config the Runner is built from.
    """
    cfg = _load_config(args, args.checkpoint)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        hooks = cfg.get('default_hooks', {})
        if 'visualization' not in hooks:
            raise BadValueError(
                '--show/--show-dir need default_hooks.visualization = '
                "dict(type='Det3DVisualizationHook') in the config")
        vis = hooks['visualization']
        vis['draw'] = True
        if args.show:
            vis['show'] = True
            vis['wait_time'] = args.wait_time
        if args.show_dir:
            vis['test_out_dir'] = args.show_dir
        vis['vis_task'] = args.task
        vis['score_thr'] = args.score_thr
    if args.tta:
        for key in ('tta_model', 'tta_pipeline'):
            if key not in cfg:
                raise BadValueError(
                    f'--tta needs {key} in the config {args.config}')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    return cfg


def _evaluator_types(evaluator) -> List[str]:
    if evaluator is None:
        return []
    if isinstance(evaluator, (list, tuple)):
        return [t for e in evaluator for t in _evaluator_types(e)]
    kind = evaluator.get('type', 'Evaluator')
    if kind == 'Evaluator':  # mmengine's Evaluator wrapping metrics
        return _evaluator_types(evaluator.get('metrics', None))
    return [kind]


def check_evaluator_available(cfg: Config) -> None:
    """Stop before inference when the test metric cannot run here.

    mmdet3d's ``WaymoMetric`` needs the Waymo devkit (TensorFlow) and the
    ``compute_detection_metrics_main`` binary built with bazel; without
    them it fails only after a whole inference pass.

    Args:
        cfg: The test config.

    Raises:
        SetupError: Naming what to install, or the metric to use instead
            (a RuntimeError).
    """
    types = _evaluator_types(cfg.get('test_evaluator', None))
    if 'WaymoMetric' not in types:
        return
    import shutil
    missing = []
    try:
        import waymo_open_dataset  # noqa: F401
    except ImportError:
        missing.append('the Waymo Open Dataset devkit (python package '
                       'waymo-open-dataset-tf-2-12-0 with TensorFlow)')
    binary = 'compute_detection_metrics_main'
    local = osp.join('mmdet3d', 'evaluation', 'functional', 'waymo_utils',
                     binary)
    if shutil.which(binary) is None and not osp.isfile(local):
        missing.append(f'the bazel-built binary {binary} (build it from the '
                       f'Waymo devkit and put it at {local} or on PATH)')
    if missing:
        raise SetupError(
            "test_evaluator uses mmdet3d's WaymoMetric, which needs "
            + ' and '.join(missing) + '. Install them, or evaluate with '
            "ddml's Waymo metric, which needs neither: "
            "--cfg-options test_evaluator.type=WaymoMono3DMetric")


def _prepare_cpu_distributed(cfg: Config) -> None:
    """Let ``--launcher pytorch`` run on machines without CUDA.

    mmengine 0.10.7 assumes CUDA when it starts a distributed run: its
    ``init_dist`` calls ``torch.cuda.set_device`` and its default DDP wrapper
    passes ``device_ids=[LOCAL_RANK]``. Without CUDA, start the (gloo)
    process group here, which mmengine then keeps, and wrap the model in
    DDP without device ids.
    """
    import torch
    import torch.distributed as torch_dist
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get(
            'backend', 'gloo')
        torch_dist.init_process_group(backend=backend)
    if cfg.get('model_wrapper_cfg', None) is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def build_runner(cfg: Config) -> Runner:
    """Build the Runner (or the ``runner_type`` of the config)."""
    _prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
