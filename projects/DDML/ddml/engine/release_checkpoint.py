"""Turn a checkpoint of MonoDLE's or DDML's release into an mmengine one.

Both releases (xinzhuma/monodle e426aa6, mingyuShin/DDML-M3DOD c378da3)
save ``{'epoch', 'model_state', 'optimizer_state'}``
(``lib/helpers/save_helper.py``), ``model_state`` being the state dict of
their ``CenterNet3D`` (``lib/models/centernet3d.py``): a DLA-34
``backbone``, the DLA-up ``neck`` and one branch per output (``heatmap``,
``offset_2d``, ``size_2d``, ``depth``, ``offset_3d``, ``size_3d``,
``heading`` and, in DDML's with ``obj_depth: True``, ``obj_depth``), each
``Sequential(Conv3x3(64 -> 256), ReLU, Conv1x1(256 -> k))``.

configs/monodle builds the same network (mmdet3d's ``DLANet``, ddml's
:class:`~ddml.models.necks.MonoDLEDLAUp`, :class:`MonoDLEHead` and, for
DDML, :class:`ObjectDepthMapHead`). The conversion

* renames the backbone's norm layers (``bn1``/``bn2``/``root.bn`` ->
  ``norm1``/``norm2``/``root.norm``) and leaves out its unused ImageNet
  classifier ``backbone.fc`` (:mod:`ddml.models.backbones.dla_release`);
* keeps the neck's keys (the module uses the release's names);
* moves the branches under ``bbox_head.`` (``obj_depth.0``/``.2`` to
  ``depth_map_head.conv``/``.pred``; everything under ``detector.`` when
  the config wraps MonoDLE in ``DepthDiscriminativeDetector``);
* reorders the heatmap channels from the release's class order
  (``cls2id = {'Pedestrian': 0, 'Car': 1, 'Cyclist': 2}``,
  ``lib/datasets/kitti/kitti_dataset.py`` lines 25-26) to the config's
  (mmdet3d: Pedestrian, Cyclist, Car), and the ``size_3d`` channels from
  the release's ``(h, w, l)`` (``kitti_dataset.py`` line 256) to
  :class:`MonoDLECoder`'s ``(l, h, w)``;
* checks that the config decodes sizes as the checkpoint was trained:
  absolute sizes (``mean_sizes`` all zero) for the release's default
  ``meanshape: False``, residuals to the release's ``cls_mean_size`` for
  ``meanshape: True``.

The result loads into the config's model with a strict key match and
gives the release's outputs on the same input
(``tests/test_models/test_release_network.py``). Use it as::

    python tools/convert_release_checkpoint.py RELEASE.pth OUT.pth \\
        [--config CONFIG]
    python tools/test.py CONFIG OUT.pth
"""
import argparse
import contextlib
import copy
import os.path as osp
import pickle
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..models.backbones.dla_release import dla_key_from_release
from ..models.heads.monodle_head import KITTI_MEAN_SIZES
from .cli import ArgumentParser, BadValueError, UsageError, check_out_file

__all__ = [
    'ReleaseCheckpointError', 'RELEASE_CLASSES', 'RELEASE_BRANCHES',
    'RELEASE_MEAN_SIZES_HWL', 'DEFAULT_CONFIGS', 'default_config',
    'load_release_state', 'convert_release_state_dict',
    'convert_release_checkpoint', 'main'
]

#: The release's class order, ``cls2id`` (kitti_dataset.py lines 25-26).
RELEASE_CLASSES = ('Pedestrian', 'Car', 'Cyclist')
#: The release's output branches (centernet3d.py line 26; DDML adds
#: ``obj_depth``).
RELEASE_BRANCHES = ('heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d',
                    'size_3d', 'heading')
#: The release's ``cls_mean_size`` (h, w, l) in ``cls2id`` order
#: (kitti_dataset.py lines 65-67), used when ``meanshape: True``.
RELEASE_MEAN_SIZES_HWL = ((1.76255119, 0.66068622, 0.84422524),
                          (1.52563191, 1.62856739, 3.52588311),
                          (1.73698127, 0.59706367, 1.76282397))
#: ``size_3d`` channel of the release for each of (l, h, w).
_SIZE_FROM_HWL = (2, 0, 1)

_CONFIG_DIR = Path('configs') / 'monodle'
#: The config a release checkpoint is converted for by default, by whether
#: it has DDML's ``obj_depth`` head.
DEFAULT_CONFIGS = {
    False: str(_CONFIG_DIR / 'monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'),
    True: str(_CONFIG_DIR /
              'ddml-release_monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'),
}
_REPO_ROOT = Path(__file__).resolve().parents[4]


class ReleaseCheckpointError(BadValueError):
    """A user mistake, described in one line with its fix (a
    :class:`ddml.engine.cli.UsageError` and a ValueError)."""


def default_config(has_obj_depth: bool) -> str:
    """Path of the default config for a release checkpoint.

    Args:
        has_obj_depth (bool): Whether the checkpoint has DDML's ``obj_depth``
            head.

    Returns:
        str: ``configs/monodle/...`` relative to the working directory when
        it exists there, else in this repository.
    """
    rel = DEFAULT_CONFIGS[bool(has_obj_depth)]
    if osp.isfile(rel):
        return rel
    return str(_REPO_ROOT / rel)


def load_release_state(path: str) -> Tuple['OrderedDict[str, Tensor]', Dict]:
    """Read the ``model_state`` of a release checkpoint.

    Accepts what ``save_helper.py`` writes (``{'epoch', 'model_state',
    'optimizer_state'}``, also with ``module.``-prefixed keys) or a bare
    ``model_state``. Loads with ``weights_only=True`` (nothing in the file
    runs).

    Args:
        path (str): The release checkpoint.

    Returns:
        tuple[OrderedDict, dict]: The state dict (``module.`` stripped) and
        facts about the file (``epoch``).

    Raises:
        ReleaseCheckpointError: The file is missing, unreadable or not a
            release checkpoint.
    """
    if not osp.isfile(path):
        raise ReleaseCheckpointError(
            f'{path}: no such file; give the .pth that the release\'s '
            "trainer saved (e.g. checkpoints/checkpoint_epoch_140.pth)")
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError,
            ValueError) as err:
        reason = str(err).split('WeightsUnpickler error:')[-1]
        reason = ' '.join(reason.split('Check the documentation')[0].split())
        reason = reason[:120]
        raise ReleaseCheckpointError(
            f'{path}: not a torch checkpoint that loads with '
            f'weights_only=True ({type(err).__name__}: {reason}); give the '
            ".pth that the release's trainer saved") from None
    if not isinstance(checkpoint, Mapping):
        raise ReleaseCheckpointError(
            f'{path}: holds a {type(checkpoint).__name__}, not a checkpoint '
            "dict; give the .pth that the release's trainer saved "
            "(a dict with 'model_state')")
    info = {}
    if 'model_state' in checkpoint:
        state = checkpoint['model_state']
        info['epoch'] = checkpoint.get('epoch')
        if not isinstance(state, Mapping):
            raise ReleaseCheckpointError(
                f"{path}: 'model_state' is {type(state).__name__}, not a "
                "state dict; the checkpoint was saved without the model")
    elif 'state_dict' in checkpoint:
        raise ReleaseCheckpointError(
            f"{path}: has 'state_dict', not 'model_state': it is already an "
            'mmengine checkpoint; give it to tools/test.py directly')
    elif checkpoint and all(isinstance(v, Tensor)
                            for v in checkpoint.values()):
        state = checkpoint  # a bare model_state
    else:
        keys = ', '.join(repr(k) for k in list(checkpoint)[:5])
        raise ReleaseCheckpointError(
            f"{path}: no 'model_state' key (it has {keys}); not a "
            'checkpoint of the release (lib/helpers/save_helper.py writes '
            "'model_state')")
    state = OrderedDict(state)
    if state and all(k.startswith('module.') for k in state):
        state = OrderedDict((k[len('module.'):], v) for k, v in state.items())
    for key in ('backbone.base_layer.0.weight',
                'neck.ida_0.proj_1.conv.weight', 'heatmap.2.weight',
                'size_3d.2.weight'):
        if key not in state:
            raise ReleaseCheckpointError(
                f"{path}: model_state has no '{key}'; not a MonoDLE/DDML "
                'release checkpoint (CenterNet3D with dla34 and DLAUp)')
    return state, info


def _rows(tensor: Tensor, index: Sequence[int]) -> Tensor:
    """Output channels ``index`` of a conv weight or bias, a new tensor."""
    return tensor.index_select(0, torch.as_tensor(list(index)))


def convert_release_state_dict(
        state: Mapping[str, Tensor],
        classes: Sequence[str],
        detector_prefix: str = '',
        depth_map_head_prefix: Optional[str] = 'depth_map_head.'
) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """Map a release ``model_state`` to ddml's keys and channel orders.

    Args:
        state (Mapping[str, Tensor]): The release's ``model_state``.
        classes (Sequence[str]): The heatmap channels of the target model,
            a reordering of :data:`RELEASE_CLASSES`.
        detector_prefix (str): Prefix of MonoDLE's modules in the target
            (``'detector.'`` inside ``DepthDiscriminativeDetector``).
            Defaults to ''.
        depth_map_head_prefix (str, optional): Prefix of the target's
            ``ObjectDepthMapHead``; None drops ``obj_depth``. Defaults to
            ``'depth_map_head.'``.

    Returns:
        tuple[OrderedDict, list[str]]: The converted state dict and the
        release keys left out.

    Raises:
        ReleaseCheckpointError: ``classes`` is not a reordering of the
            release's classes, or a key is not the release's.
    """
    if sorted(classes) != sorted(RELEASE_CLASSES):
        raise ReleaseCheckpointError(
            f'the config has classes {list(classes)}, the release checkpoint '
            f'{list(RELEASE_CLASSES)}; use a config with those 3 classes')
    heatmap_rows = [RELEASE_CLASSES.index(c) for c in classes]
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped = []
    for key, value in state.items():
        module, _, rest = key.partition('.')
        if module == 'backbone':
            new = dla_key_from_release(rest)
            if new is None:
                dropped.append(key)
                continue
            out[f'{detector_prefix}backbone.{new}'] = value
        elif module == 'neck':
            out[f'{detector_prefix}{key}'] = value
        elif module in RELEASE_BRANCHES:
            if module == 'heatmap' and rest.startswith('2.'):
                value = _rows(value, heatmap_rows)
            elif module == 'size_3d' and rest.startswith('2.'):
                value = _rows(value, _SIZE_FROM_HWL)
            out[f'{detector_prefix}bbox_head.{key}'] = value
        elif module == 'obj_depth':
            if depth_map_head_prefix is None:
                dropped.append(key)
                continue
            layer, _, param = rest.partition('.')
            names = {'0': 'conv', '2': 'pred'}
            if layer not in names:
                raise ReleaseCheckpointError(
                    f"unexpected key '{key}' in the release checkpoint")
            out[f'{depth_map_head_prefix}{names[layer]}.{param}'] = value
        else:
            raise ReleaseCheckpointError(
                f"unexpected key '{key}': not a key of the release's "
                'CenterNet3D (backbone, neck, the output branches, '
                'obj_depth)')
    return out, dropped


def _model_parts(cfg) -> Tuple[dict, str, bool]:
    """MonoDLE's config, its prefix and whether a depth map head is set."""
    model = cfg.model
    if model.get('type') == 'DepthDiscriminativeDetector':
        return (model.detector, 'detector.',
                model.get('depth_map_head', dict(
                    type='ObjectDepthMapHead')) is not None)
    return model, '', False


def _config_classes(cfg) -> List[str]:
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = cfg.get(loader, {}).get('dataset', {})
        classes = dataset.get('metainfo', {}).get('classes')
        if classes:
            return list(classes)
    if cfg.get('class_names'):
        return list(cfg.class_names)
    raise ReleaseCheckpointError(
        'the config names no classes (test_dataloader.dataset.metainfo.'
        'classes); use a config of configs/monodle')


def _expected_mean_sizes(classes: Sequence[str],
                         meanshape: bool) -> List[List[float]]:
    """The ``mean_sizes`` (l, h, w) that decode the checkpoint's sizes."""
    if not meanshape:
        return [[0., 0., 0.] for _ in classes]
    return [[RELEASE_MEAN_SIZES_HWL[RELEASE_CLASSES.index(c)][i]
             for i in _SIZE_FROM_HWL] for c in classes]


def convert_release_checkpoint(release: str,
                               config: Optional[str] = None,
                               meanshape: bool = False) -> Dict:
    """Convert a release checkpoint for a config of configs/monodle.

    Args:
        release (str): The release's checkpoint.
        config (str, optional): The config the result is for. Defaults to
            the MonoDLE 3-class config, or the ddml-release 3-class one
            when the checkpoint has DDML's ``obj_depth`` head
            (:data:`DEFAULT_CONFIGS`).
        meanshape (bool): The release's ``dataset.meanshape`` it was trained
            with (its yamls: False, absolute sizes). Defaults to False.

    Returns:
        dict: ``checkpoint`` (``{'meta', 'state_dict'}``, loads strictly
        into the config's model), ``config`` (its path), ``dropped`` (the
        release keys left out) and ``notes`` (lines for the user).

    Raises:
        ReleaseCheckpointError: Any mistake, in one line naming the file or
            key and the fix.
    """
    state, info = load_release_state(release)
    has_obj_depth = any(k.startswith('obj_depth.') for k in state)
    config = config or default_config(has_obj_depth)
    if not osp.isfile(config):
        raise ReleaseCheckpointError(
            f'{config}: no such config; give one of configs/monodle '
            f'(e.g. {DEFAULT_CONFIGS[has_obj_depth]})')
    from mmengine.config import Config
    try:
        with _quiet_dependencies():
            cfg = Config.fromfile(config)
    except Exception as err:  # noqa: BLE001 - any parse error, one line
        raise ReleaseCheckpointError(
            f'{config}: cannot read the config ({type(err).__name__}: '
            f'{" ".join(str(err).split())[:160]})') from None
    detector, prefix, with_depth_map_head = _model_parts(cfg)
    neck_type = detector.get('neck', {}).get('type')
    if detector.get('type') != 'MonoDLE' or neck_type != 'MonoDLEDLAUp':
        raise ReleaseCheckpointError(
            f'{config}: builds {detector.get("type")} with neck {neck_type}, '
            "not the release's network (MonoDLE with MonoDLEDLAUp); use "
            f'{DEFAULT_CONFIGS[has_obj_depth]}')
    release_channels = int(state['heatmap.2.weight'].shape[0])
    head_classes = int(detector.bbox_head.num_classes)
    if release_channels != len(RELEASE_CLASSES):
        raise ReleaseCheckpointError(
            f"{release}: 'heatmap.2.weight' has {release_channels} "
            f'channels; the release builds {len(RELEASE_CLASSES)} '
            f'({", ".join(RELEASE_CLASSES)}; model.num_class: 3 in its yaml)'
            ' and this tool converts only those')
    if head_classes != release_channels:
        raise ReleaseCheckpointError(
            f"{config}: its head has {head_classes} heatmap channel(s) but "
            f"{release} has {release_channels} (the release keeps all 3 "
            'even when it trains on Car only); use the 3-class config '
            f'{DEFAULT_CONFIGS[has_obj_depth]} and read the Car AP')
    classes = _config_classes(cfg)
    if len(classes) != head_classes or \
            sorted(classes) != sorted(RELEASE_CLASSES):
        raise ReleaseCheckpointError(
            f'{config}: its classes are {classes} ({head_classes} heatmap '
            f"channels), the release's {list(RELEASE_CLASSES)}; use "
            f'{DEFAULT_CONFIGS[has_obj_depth]}')
    if with_depth_map_head and not has_obj_depth:
        raise ReleaseCheckpointError(
            f'{release}: has no obj_depth head (a MonoDLE checkpoint, or '
            f'DDML trained with obj_depth: False) but {config} has a '
            f'depth_map_head; use {DEFAULT_CONFIGS[False]}')
    coder = detector.bbox_head.get('bbox_coder', {})
    mean_sizes = torch.as_tensor(
        coder.get('mean_sizes', KITTI_MEAN_SIZES), dtype=torch.float32)
    want = _expected_mean_sizes(classes, meanshape)
    if mean_sizes.shape != (len(want), 3) or not torch.allclose(
            mean_sizes, torch.tensor(want), atol=1e-6):
        trained = ('residuals to its cls_mean_size (meanshape: True)'
                   if meanshape else 'absolute sizes (meanshape: False)')
        other = ('drop --meanshape if its yaml set meanshape: False'
                 if meanshape else
                 'pass --meanshape if its yaml set meanshape: True')
        raise ReleaseCheckpointError(
            f'{config}: model.bbox_head.bbox_coder.mean_sizes is '
            f'{mean_sizes.tolist()} but the checkpoint regresses {trained};'
            f' set it to {want} (order {classes}, (l, h, w)), or {other}')
    state_dict, dropped = convert_release_state_dict(
        state, classes, detector_prefix=prefix,
        depth_map_head_prefix='depth_map_head.'
        if with_depth_map_head else None)

    model = _build_model(cfg)
    expected = model.state_dict()
    for key, value in expected.items():
        # checkpoints of torch < 0.4.1 have no BN batch counters
        if key.endswith('num_batches_tracked') and key not in state_dict:
            state_dict[key] = torch.zeros_like(value)
    default = default_config(has_obj_depth)
    fix = (f'use {DEFAULT_CONFIGS[has_obj_depth]}'
           if osp.abspath(config) != osp.abspath(default) else
           "give a complete model_state of the release's CenterNet3D "
           '(dla34, DLAUp, 3 classes)')
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        what = (f'lacks {len(missing)} key(s), e.g. {missing[:2]}'
                if missing else '') + \
            (' and ' if missing and unexpected else '') + \
            (f'has {len(unexpected)} the model has not, e.g. '
             f'{unexpected[:2]}' if unexpected else '')
        raise ReleaseCheckpointError(
            f'{release} does not fit {config}: converted, it {what}; {fix}')
    for key, value in expected.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise ReleaseCheckpointError(
                f"{release} does not fit {config}: '{key}' has shape "
                f'{tuple(state_dict[key].shape)}, the model '
                f'{tuple(value.shape)}; {fix}')
    state_dict = OrderedDict((k, state_dict[k].contiguous())
                             for k in expected)
    notes = []
    if has_obj_depth and not with_depth_map_head:
        notes.append('left out the obj_depth head (training-only; the '
                     'config has no depth_map_head)')
    if classes != list(RELEASE_CLASSES):
        notes.append(f'heatmap channels reordered from the release\'s '
                     f'{list(RELEASE_CLASSES)} to {classes}')
    meta = dict(ddml_release_conversion=dict(
        source=osp.abspath(release),
        epoch=info.get('epoch'),
        config=osp.abspath(config),
        classes=list(classes),
        release_classes=list(RELEASE_CLASSES),
        meanshape=bool(meanshape),
        dropped_keys=list(dropped)))
    return dict(
        checkpoint=dict(meta=meta, state_dict=state_dict),
        config=config,
        dropped=dropped,
        notes=notes)


@contextlib.contextmanager
def _quiet_dependencies():
    """Silence the dependencies' deprecation notices (pkg_resources, jit)
    that importing the config's modules prints, so that a mistake reads as
    one line."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', PendingDeprecationWarning)
        warnings.filterwarnings('ignore',
                                message='pkg_resources is deprecated')
        yield


def _build_model(cfg):
    """The config's model with random weights (nothing downloaded)."""
    import ddml  # noqa: F401  (registers the modules)
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    model_cfg = copy.deepcopy(cfg.model)
    detector = model_cfg.detector if model_cfg.get(
        'type') == 'DepthDiscriminativeDetector' else model_cfg
    detector.backbone.init_cfg = None
    try:
        with _quiet_dependencies():
            return MODELS.build(model_cfg)
    except Exception as err:  # noqa: BLE001 - any build error, one line
        raise ReleaseCheckpointError(
            f'cannot build the config\'s model ({type(err).__name__}: '
            f'{" ".join(str(err).split())[:200]})') from None


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog='convert_release_checkpoint',
        description='Convert a checkpoint of MonoDLE\'s release '
        '(xinzhuma/monodle) or DDML\'s (mingyuShin/DDML-M3DOD) into an '
        'mmengine checkpoint for configs/monodle, strict-loadable and with '
        'the release\'s outputs.')
    parser.add_argument('release', help='the release\'s checkpoint (.pth '
                        "with 'model_state')")
    parser.add_argument('out', help='the mmengine checkpoint to write')
    parser.add_argument(
        '--config',
        help='the config it is for (default: the MonoDLE 3-class config, '
        'or the ddml-release 3-class one when the checkpoint has obj_depth)')
    parser.add_argument(
        '--meanshape',
        action='store_true',
        help='the release was trained with dataset.meanshape: True (its '
        'yamls set False)')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: convert, write and say what was done.

    Args:
        argv (list[str], optional): Arguments without the program name.
            None reads ``sys.argv``.

    Returns:
        int: 0 on success; mistakes exit with status 2 and one line on
        stderr.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        check_out_file(args.out, 'out')
        if osp.isfile(args.out) and osp.isfile(args.release) and \
                osp.samefile(args.out, args.release):
            raise ReleaseCheckpointError(
                f'{args.out}: is the release checkpoint itself; give '
                'another file name for the converted one')
        result = convert_release_checkpoint(args.release, args.config,
                                            args.meanshape)
        torch.save(result['checkpoint'], args.out)
    except UsageError as err:
        parser.error(str(err))
    state_dict = result['checkpoint']['state_dict']
    print(f'wrote {args.out}: {len(state_dict)} tensors for '
          f'{result["config"]}; left out {len(result["dropped"])} release '
          f'key(s) ({", ".join(result["dropped"]) or "none"})')
    for note in result['notes']:
        print(f'  {note}')
    print(f'evaluate with: python tools/test.py {result["config"]} '
          f'{args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
