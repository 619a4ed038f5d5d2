"""Monocular 3D detection on one's own images, with one's own intrinsics.

The Python side of ``tools/infer.py`` (whose command line is
:mod:`ddml.engine.infer`), in the shape of mmdet3d's ``mmdet3d.apis``:

* :func:`init_model` builds a config's model and loads a checkpoint into it
  with a strict key check; a ``DepthDiscriminativeDetector`` checkpoint
  loads into the plain config of its detector too (the wrapper predicts as
  its detector), and a plain checkpoint into the ``ddml_*`` config.
* :func:`cam2img_from_calib` / :func:`cam2img_from_intrinsics` give the
  4x4 camera matrix (a KITTI calib file's ``P2``, or ``fx, fy, cx, cy``).
* :func:`mono_data_info` is the data info that a dataset of the config
  would hand its test pipeline for the image; :func:`inference_mono_image`
  sends it through the config's own test pipeline and ``test_step``.
* :func:`predictions_to_dict` and :func:`draw_mono_3d_predictions` turn the
  predictions into the JSON and the picture (projected 3D boxes drawn by
  mmdet3d's ``Det3DLocalVisualizer``); :func:`infer_images` does all of it
  for a list of images.

A user's mistake (a missing or unreadable file, a bad value, a checkpoint
of another config) raises :class:`InferenceInputError` (a
:class:`ddml.engine.cli.UsageError`), whose message is one line that names
the file or option and the fix.
"""
import contextlib
import copy
import inspect
import json
import os
import os.path as osp
import pickle
import re
import time
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from ..engine.cli import BadValueError, UsageError, check_not_renamed

__all__ = [
    'InferenceInputError', 'WRAPPER_TYPE', 'BOX_CONVENTION',
    'quiet_dependencies', 'check_config_path', 'check_out_dir', 'load_config',
    'check_checkpoint_path', 'init_model', 'check_device',
    'cam2img_from_intrinsics', 'cam2img_from_calib', 'mono_test_pipeline',
    'mono_data_info', 'check_image', 'read_image', 'inference_mono_image',
    'predictions_to_dict', 'draw_mono_3d_predictions', 'output_paths',
    'infer_images'
]

#: The registered type of ddml's wrapper (predicts as its ``detector``).
WRAPPER_TYPE = 'DepthDiscriminativeDetector'

#: What the numbers of a box in the JSON mean.
BOX_CONVENTION = (
    "camera frame (x right, y down, z forward), metres; x, y, z: the "
    "bottom centre of the box (mmdet3d's CameraInstance3DBoxes); l, h, w: "
    "its size along x, y, z at yaw 0; yaw: rotation about y in radians "
    "(KITTI's rotation_y)")

#: Box colours (RGB) by class index.
_PALETTE = [(30, 110, 255), (235, 50, 40), (250, 170, 20), (40, 200, 60),
            (170, 60, 220), (0, 190, 190), (240, 90, 190), (120, 120, 120)]

#: Transforms that load labels: dropped from the test pipeline (an image
#: of one's own has none).
_ANNOTATION_LOADERS = ('LoadAnnotations3D', 'LoadAnnotations',
                       'mmdet.LoadAnnotations')

PathOrConfig = Union[str, Config]


class InferenceInputError(BadValueError):
    """A user's mistake, described in one line with its fix (a
    :class:`ddml.engine.cli.UsageError` and a ValueError: the command line
    prints it as one line with exit status 2)."""


@contextlib.contextmanager
def quiet_dependencies():
    """Silence the deprecation notices (pkg_resources, ...) that importing
    the config's modules prints, so that a mistake reads as one line."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', PendingDeprecationWarning)
        warnings.filterwarnings(
            'ignore', message='pkg_resources is deprecated')
        yield


def _one_line(text: Any, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def check_config_path(config: str) -> str:
    """``config`` if it is a file (one-line error otherwise; a renamed
    config's old name is answered with the new one)."""
    try:
        check_not_renamed(config)
    except UsageError as err:
        raise InferenceInputError(str(err)) from None
    if not osp.isfile(config):
        raise InferenceInputError(
            f'{config}: no such config file; give a monocular config, '
            'e.g. configs/demo/'
            'monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py')
    return config


def check_out_dir(out_dir: str) -> str:
    """``out_dir`` if it is a folder or can be one (one-line error
    otherwise: it, or a folder above it, is a file)."""
    here = osp.abspath(out_dir)
    while not osp.exists(here) and osp.dirname(here) != here:
        here = osp.dirname(here)
    if osp.exists(here) and not osp.isdir(here):
        under = '' if here == osp.abspath(out_dir) else f' (under {here})'
        raise InferenceInputError(
            f'--out-dir {out_dir}: is a file{under}; give a folder (it is '
            'created when missing)')
    return out_dir


def load_config(config: PathOrConfig,
                cfg_options: Optional[dict] = None) -> Config:
    """Read a monocular 3D config.

    Args:
        config (str | Config): Config file or an already read config.
        cfg_options (dict, optional): Overrides merged into the config
            (as ``--cfg-options`` of mmdet3d's tools).

    Returns:
        Config: A copy of the config with the overrides.

    Raises:
        InferenceInputError: The file is missing or does not parse, or its
            test pipeline does not load a monocular image
            (``LoadImageFromFileMono3D``).
    """
    if isinstance(config, Config):
        cfg, name = copy.deepcopy(config), config.filename or 'the config'
    else:
        name = check_config_path(str(config))
        try:
            with quiet_dependencies():
                cfg = Config.fromfile(name)
        except Exception as err:  # noqa: BLE001 - any parse error, one line
            raise InferenceInputError(
                f'{name}: cannot read the config ({type(err).__name__}: '
                f'{_one_line(err, 160)}); fix the file or give another '
                'config') from None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as err:  # noqa: BLE001 - any merge error, one line
            raise InferenceInputError(
                f'--cfg-options: cannot merge {cfg_options} into {name} '
                f'({type(err).__name__}: {_one_line(err, 120)}); give keys '
                'of the config') from None
    pipeline = _config_test_pipeline(cfg)
    if pipeline is None or not any(
            t.get('type') == 'LoadImageFromFileMono3D' for t in pipeline):
        raise InferenceInputError(
            f'{name}: its test pipeline does not load a monocular image '
            '(no LoadImageFromFileMono3D), so it is not a monocular 3D '
            'config; give one of configs/{demo,monodle,monoflex,smoke,fcos3d,'
            'pgd}')
    return cfg


def _config_test_pipeline(cfg) -> Optional[list]:
    """The test pipeline that ``tools/test.py`` would run."""
    loader = cfg.get('test_dataloader', None)
    dataset = loader.get('dataset', None) if loader else None
    while dataset is not None and 'pipeline' not in dataset and \
            'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    if dataset is not None and dataset.get('pipeline') is not None:
        return list(dataset['pipeline'])
    pipeline = cfg.get('test_pipeline', None)
    return list(pipeline) if pipeline is not None else None


def _test_dataset_cfg(cfg) -> dict:
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset and 'pipeline' not in dataset:
        dataset = dataset['dataset']
    return dataset


def _config_classes(cfg) -> Optional[List[str]]:
    """The class names of the config's test dataset."""
    dataset = _test_dataset_cfg(cfg)
    metainfo = dataset.get('metainfo', None) or {}
    if metainfo.get('classes'):
        return list(metainfo['classes'])
    if cfg.get('class_names', None):
        return list(cfg.class_names)
    try:
        from mmdet3d.registry import DATASETS
        dataset_cls = DATASETS.get(dataset.get('type'))
        return list(dataset_cls.METAINFO['classes'])
    except Exception:  # noqa: BLE001 - unknown dataset type: no names
        return None


def _predicting_detector_cfg(model_cfg):
    """The config of the detector that predicts (the wrapped one)."""
    if model_cfg.get('type') == WRAPPER_TYPE:
        return model_cfg.detector
    return model_cfg


def check_checkpoint_path(checkpoint: str) -> str:
    """``checkpoint`` if it is a file (one-line error otherwise)."""
    if not osp.isfile(checkpoint):
        raise InferenceInputError(
            f'{checkpoint}: no such checkpoint file; give the .pth that '
            'training wrote (work_dirs/<config name>/*.pth)')
    return checkpoint


def _looks_like_torch_file(path: str) -> bool:
    """Whether ``path`` is a zip archive (``torch.save`` since torch 1.6)
    or a pickle (older ``torch.save``)."""
    import zipfile
    if zipfile.is_zipfile(path):
        return True
    with open(path, 'rb') as f:
        return f.read(1) == b'\x80'  # pickle's PROTO opcode


def _read_checkpoint(checkpoint: str) -> Mapping:
    """A local checkpoint, loaded with ``weights_only=True``."""
    from ..compat import CheckpointRefusedError, load_local_checkpoint
    check_checkpoint_path(checkpoint)
    if not _looks_like_torch_file(checkpoint):
        raise InferenceInputError(
            f'{checkpoint}: not a torch checkpoint (neither the zip file '
            'nor the pickle that torch.save writes); give the .pth that '
            'training wrote')
    try:
        ckpt = load_local_checkpoint(checkpoint, map_location='cpu')
    except CheckpointRefusedError as err:
        raise InferenceInputError(_one_line(err, 400)) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError,
            ValueError, AttributeError, ImportError) as err:
        raise InferenceInputError(
            f'{checkpoint}: not a torch checkpoint ({type(err).__name__}: '
            f'{_one_line(err, 100)}); give the .pth that training '
            'wrote') from None
    if not isinstance(ckpt, Mapping):
        raise InferenceInputError(
            f'{checkpoint}: holds a {type(ckpt).__name__}, not a checkpoint '
            "dict; give the .pth that training wrote (with 'state_dict')")
    if 'model_state' in ckpt and 'state_dict' not in ckpt:
        raise InferenceInputError(
            f"{checkpoint}: a checkpoint of MonoDLE's or DDML's release "
            "('model_state'); convert it first with python "
            'tools/convert_release_checkpoint.py '
            f'{checkpoint} OUT.pth')
    return ckpt


def _checkpoint_state(ckpt: Mapping, checkpoint: str) -> 'OrderedDict':
    """The state dict of a checkpoint, ``module.`` prefixes stripped."""
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and torch.is_tensor(v)
            for k, v in state.items()):
        raise InferenceInputError(
            f"{checkpoint}: has no 'state_dict' of tensors; give the .pth "
            'that training wrote')
    if all(k.startswith('module.') for k in state):
        state = OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return OrderedDict(state)


def _match_state(model: torch.nn.Module, state: 'OrderedDict', wrapper: bool,
                 checkpoint: str, config: str) -> Tuple['OrderedDict', bool]:
    """Adapt a state dict to ``model`` and check that it fits.

    Returns:
        tuple: The state dict to load and whether to load it strictly (a
        plain checkpoint in a wrapper config leaves the training-only
        modules of the wrapper as built).
    """
    from ..models.detectors.depth_discriminative import \
        export_baseline_checkpoint
    wrapped_ckpt = any(k.startswith('detector.') for k in state)
    strict = True
    if wrapper and not wrapped_ckpt:
        # a plain detector's checkpoint: the wrapper predicts as it does
        state = OrderedDict(('detector.' + k, v) for k, v in state.items())
        strict = False
    elif not wrapper and wrapped_ckpt:
        state = OrderedDict(
            export_baseline_checkpoint(dict(state_dict=state))['state_dict'])
    expected = model.state_dict()
    must_have = [k for k in expected if strict or k.startswith('detector.')]
    missing = [k for k in must_have if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        k for k in state
        if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f'{len(missing)} weight(s) of the model missing, '
                         f'e.g. {missing[0]}')
        if unexpected:
            parts.append(f'{len(unexpected)} not in the model, e.g. '
                         f'{unexpected[0]}')
        if reshaped:
            k = reshaped[0]
            parts.append(f'{len(reshaped)} of another shape, e.g. {k} '
                         f'{tuple(state[k].shape)} in the checkpoint, '
                         f'{tuple(expected[k].shape)} in the model')
        raise InferenceInputError(
            f'{checkpoint}: does not match the model of {config} '
            f'({"; ".join(parts)}); give the config it was trained with '
            '(its work_dir holds a copy)')
    return state, strict


def init_model(config: PathOrConfig,
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a monocular 3D detector and load its checkpoint.

    As mmdet3d's ``init_model``, with a strict key check and ddml's
    wrapper: a ``DepthDiscriminativeDetector`` checkpoint loads into the
    plain config of its detector (reduced with
    :func:`ddml.models.detectors.depth_discriminative.
    export_baseline_checkpoint`) and a plain checkpoint into the ``ddml_*``
    config (into its ``detector``).

    Args:
        config (str | Config): The config.
        checkpoint (str, optional): A local checkpoint; None keeps the
            weights as built (random).
        device (str): Where the model runs. Defaults to 'cpu'.
        cfg_options (dict, optional): Config overrides.

    Returns:
        nn.Module: The model in eval mode, with ``cfg`` (the config) and
        ``dataset_meta`` (``classes``: the checkpoint's ``dataset_meta``
        where it has one, else the config's).

    Raises:
        InferenceInputError: The config or checkpoint is missing,
            unreadable or the checkpoint does not fit the config, or the
            device is not available.
    """
    import ddml  # noqa: F401  (registers the add-on, checkpoint loading)
    from mmengine.registry import init_default_scope

    from mmdet3d.registry import MODELS
    cfg = load_config(config, cfg_options)
    name = str(config) if isinstance(config, str) else (cfg.filename
                                                        or 'the config')
    device = check_device(device)
    ckpt = _read_checkpoint(checkpoint) if checkpoint is not None else None
    state = _checkpoint_state(ckpt, checkpoint) if ckpt is not None else None

    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    model_cfg = copy.deepcopy(cfg.model)
    _predicting_detector_cfg(model_cfg).train_cfg = None  # as mmdet3d does
    wrapper = model_cfg.get('type') == WRAPPER_TYPE
    try:
        with quiet_dependencies():
            model = MODELS.build(model_cfg)
    except Exception as err:  # noqa: BLE001 - any build error, one line
        raise InferenceInputError(
            f'{name}: cannot build its model ({type(err).__name__}: '
            f'{_one_line(err, 160)})') from None
    if state is not None:
        state, strict = _match_state(model, state, wrapper, checkpoint, name)
        model.load_state_dict(state, strict=strict)
    meta = (ckpt or {}).get('meta', None) or {}
    dataset_meta = meta.get('dataset_meta', None) if isinstance(
        meta, Mapping) else None
    if dataset_meta and dataset_meta.get('classes'):
        model.dataset_meta = dict(dataset_meta)
    else:
        model.dataset_meta = dict(classes=_config_classes(cfg))
    model.cfg = cfg
    model.to(device).eval()
    return model


def check_device(device: str) -> str:
    """``device`` if torch can run there (one-line error otherwise)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InferenceInputError(
            f'--device {device}: not a torch device ({_one_line(err, 80)}); '
            'use cpu, cuda or cuda:N') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise InferenceInputError(
                f'--device {device}: this torch has no CUDA device; use '
                '--device cpu')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InferenceInputError(
                f'--device {device}: there are '
                f'{torch.cuda.device_count()} CUDA device(s); use cuda:0')
    elif dev.type != 'cpu':
        raise InferenceInputError(
            f'--device {device}: not supported here; use cpu or cuda')
    return str(dev)


def _as_4x4(matrix: np.ndarray) -> np.ndarray:
    """A 3x3 or 3x4 camera matrix padded to 4x4 (as mmdet3d's infos)."""
    out = np.eye(4, dtype=np.float64)
    out[:matrix.shape[0], :matrix.shape[1]] = matrix
    return out


def cam2img_from_intrinsics(
        intrinsics: Union[str, Sequence[float]]) -> np.ndarray:
    """The 4x4 camera matrix of a pinhole camera.

    Args:
        intrinsics (str | Sequence[float]): ``fx, fy, cx, cy`` in pixels,
            as four numbers or as the text ``'fx,fy,cx,cy'``.

    Returns:
        np.ndarray: ``[[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0],
        [0, 0, 0, 1]]`` (float64).

    Raises:
        InferenceInputError: Not four numbers, or a focal length that is
            not positive.
    """
    text = intrinsics if isinstance(intrinsics, str) else ','.join(
        str(v) for v in intrinsics)
    fix = ('give --cam2img fx,fy,cx,cy in pixels, e.g. '
           '--cam2img 721.54,721.54,609.56,172.85')
    try:
        values = [float(v) for v in re.split(r'[,\s]+', text.strip()) if v]
    except ValueError:
        raise InferenceInputError(
            f'--cam2img {text}: not numbers; {fix}') from None
    if len(values) != 4:
        raise InferenceInputError(
            f'--cam2img {text}: {len(values)} value(s), not 4; {fix}')
    fx, fy, cx, cy = values
    if not all(np.isfinite(values)) or fx <= 0 or fy <= 0:
        raise InferenceInputError(
            f'--cam2img {text}: fx and fy must be positive and all four '
            f'finite; {fix}')
    return _as_4x4(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]))


def cam2img_from_calib(path: str, key: str = 'P2') -> np.ndarray:
    """The 4x4 camera matrix from a KITTI calibration file.

    Reads the ``P2: <12 numbers>`` line (the left colour camera, whose
    images are ``image_2``) of a KITTI ``calib/<id>.txt``; the other keys
    are not needed. A file holding only a matrix (9, 12 or 16 numbers
    without a key, as ``demo/data/kitti/000008.txt`` of mmdet3d) is read
    as that camera's matrix.

    Args:
        path (str): The calibration file.
        key (str): The camera matrix to read. Defaults to 'P2'.

    Returns:
        np.ndarray: (4, 4) float64, the 3x4 matrix padded with
        ``[0, 0, 0, 1]`` (as mmdet3d's KITTI infos store ``cam2img``).

    Raises:
        InferenceInputError: The file is missing, has no ``key`` line, or
            its values do not parse.
    """
    fix = (f"a KITTI calib file has a line '{key}: ' with 12 numbers (the "
           '3x4 matrix row by row); or give --cam2img fx,fy,cx,cy')
    if not osp.isfile(path):
        raise InferenceInputError(
            f'--calib {path}: no such file; give the KITTI calib/<id>.txt '
            'of the image, or --cam2img fx,fy,cx,cy')
    try:
        with open(path, 'r') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise InferenceInputError(
            f'--calib {path}: cannot read it as text ({type(err).__name__})'
            f'; {fix}') from None
    keyed: Dict[str, str] = {}
    bare: List[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if ':' in line:
            name, _, rest = line.partition(':')
            keyed[name.strip()] = rest
        else:
            bare.append(line)
    if key in keyed:
        source, numbers = f'its {key} line', keyed[key]
        sizes = (12, )
    elif not keyed and bare:
        source, numbers = 'the matrix', ' '.join(bare)
        sizes = (9, 12, 16)
    else:
        found = ', '.join(sorted(keyed)) or 'none'
        raise InferenceInputError(
            f'--calib {path}: has no {key} line (keys: {found}); {fix}')
    try:
        values = np.array([float(v) for v in numbers.split()],
                          dtype=np.float64)
    except ValueError:
        raise InferenceInputError(
            f'--calib {path}: {source} has values that are not numbers; '
            f'{fix}') from None
    if values.size not in sizes or not np.all(np.isfinite(values)):
        raise InferenceInputError(
            f'--calib {path}: {source} has {values.size} value(s), not '
            f'{" or ".join(str(s) for s in sizes)}; {fix}')
    matrix = values.reshape(4, 4) if values.size == 16 else \
        values.reshape(3, values.size // 3)
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise InferenceInputError(
            f'--calib {path}: {source} has a focal length <= 0 '
            f'({matrix[0, 0]:g}, {matrix[1, 1]:g}); {fix}')
    return _as_4x4(matrix[:3]) if values.size != 16 else matrix


def _default_cam_key(dataset_cfg) -> str:
    """The camera key under which the config's dataset holds the image."""
    if dataset_cfg.get('default_cam_key'):
        return dataset_cfg['default_cam_key']
    try:
        from mmdet3d.registry import DATASETS
        dataset_cls = DATASETS.get(dataset_cfg.get('type'))
        param = inspect.signature(
            dataset_cls.__init__).parameters.get('default_cam_key')
        if param is not None and isinstance(param.default, str):
            return param.default
    except Exception:  # noqa: BLE001 - unknown dataset: KITTI's key
        pass
    return 'CAM2'


def mono_test_pipeline(cfg):
    """The config's test pipeline without its label loaders (composed).

    Args:
        cfg (Config): A monocular config.

    Returns:
        Compose: The transforms, in the config's default scope.
    """
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    pipeline = [
        copy.deepcopy(t) for t in _config_test_pipeline(cfg)
        if t.get('type') not in _ANNOTATION_LOADERS
    ]
    return Compose(pipeline)


def mono_data_info(img_path: str,
                   cam2img: np.ndarray,
                   cfg=None,
                   sample_idx: int = 0,
                   image_size: Optional[Tuple[int, int]] = None) -> dict:
    """What the config's dataset hands its test pipeline for one image.

    The fields of mmdet3d's ``Det3DDataset.parse_data_info`` and
    ``prepare_data`` for a camera-only frame: ``images`` with the image
    under the dataset's camera key (``CAM2`` for KITTI, ``CAM_FRONT`` for
    Waymo) and its ``cam2img`` (which ``LoadImageFromFileMono3D`` reads),
    the default camera's ``img_path`` and ``cam2img``, ``sample_idx`` and
    the camera box type.

    Args:
        img_path (str): The image file.
        cam2img (np.ndarray): (3, 3), (3, 4) or (4, 4) camera matrix.
        cfg (Config, optional): The config (its dataset's camera key and
            box type). Defaults to KITTI's ``CAM2`` and camera boxes.
        sample_idx (int): The frame's index. Defaults to 0.
        image_size (tuple[int, int], optional): ``(width, height)``.

    Returns:
        dict: The data info.
    """
    from mmdet3d.structures import get_box_type
    cam2img = _as_4x4(np.asarray(cam2img, dtype=np.float64)[:4, :4])
    cam_key, box_type = 'CAM2', 'Camera'
    if cfg is not None:
        dataset_cfg = _test_dataset_cfg(cfg)
        cam_key = _default_cam_key(dataset_cfg)
        box_type = dataset_cfg.get('box_type_3d', 'Camera')
    box_type_3d, box_mode_3d = get_box_type(box_type)
    camera = dict(img_path=img_path, cam2img=cam2img.tolist())
    if image_size is not None:
        camera.update(width=int(image_size[0]), height=int(image_size[1]))
    return dict(
        images={cam_key: camera},
        img_path=img_path,
        cam2img=cam2img.copy(),
        sample_idx=sample_idx,
        box_type_3d=box_type_3d,
        box_mode_3d=box_mode_3d)


def check_image(path: str) -> str:
    """``path`` if it is a file OpenCV has a decoder for (from its first
    bytes; nothing is decoded), one-line error otherwise."""
    import cv2
    if not osp.isfile(path):
        raise InferenceInputError(
            f'{path}: no such image file; give the path of a PNG or JPEG '
            'image')
    try:
        readable = cv2.haveImageReader(path)
    except cv2.error:
        readable = False
    if not readable:
        raise InferenceInputError(
            f'{path}: not an image that OpenCV can read; give a PNG or '
            'JPEG image')
    return path


def read_image(path: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB.

    Raises:
        InferenceInputError: The file is missing or not an image.
    """
    import mmcv
    check_image(path)
    try:
        image = mmcv.imread(path, flag='color', channel_order='rgb')
    except Exception:  # noqa: BLE001 - any decoding error, one line
        image = None
    if image is None or image.ndim != 3 or image.size == 0:
        raise InferenceInputError(
            f'{path}: not an image that OpenCV can read; give a PNG or '
            'JPEG image')
    return image


def inference_mono_image(model: torch.nn.Module,
                         img_path: str,
                         cam2img: np.ndarray,
                         pipeline=None,
                         sample_idx: int = 0):
    """The model's prediction for one image through the test pipeline.

    Args:
        model (nn.Module): From :func:`init_model` (has ``cfg``).
        img_path (str): The image file.
        cam2img (np.ndarray): Its camera matrix (3x3, 3x4 or 4x4).
        pipeline (Compose, optional): :func:`mono_test_pipeline` of the
            model's config (built when not given).
        sample_idx (int): The frame index put into the sample. Defaults
            to 0.

    Returns:
        Det3DDataSample: What ``model.test_step`` returns for it (boxes in
        the camera frame of ``cam2img``).
    """
    from mmengine.dataset import pseudo_collate
    if pipeline is None:
        pipeline = mono_test_pipeline(model.cfg)
    data = pipeline(
        mono_data_info(img_path, cam2img, model.cfg, sample_idx=sample_idx))
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0]


def predictions_to_dict(sample,
                        classes: Optional[Sequence[str]] = None,
                        score_thr: float = 0.0) -> Dict[str, list]:
    """The boxes of a data sample with score >= ``score_thr``.

    Args:
        sample (Det3DDataSample): A prediction (``pred_instances_3d``;
            ``pred_instances`` for the 2D boxes of detectors that predict
            them).
        classes (Sequence[str], optional): Class names by label.
        score_thr (float): Boxes below this score are left out.

    Returns:
        dict: ``boxes`` (per 3D box, in the model's order: ``x, y, z, l,
        h, w, yaw`` (:data:`BOX_CONVENTION`), ``score``, ``label``,
        ``class``; ``velocity`` for 9-dim boxes) and ``boxes_2d`` (per 2D
        box: ``x1, y1, x2, y2`` in pixels, ``score``, ``label``,
        ``class``). Numbers are the model's float32 values as Python
        floats.
    """
    names = list(classes) if classes else []

    def name(label: int) -> str:
        return names[label] if 0 <= label < len(names) else str(label)

    out: Dict[str, list] = dict(boxes=[], boxes_2d=[])
    if 'pred_instances_3d' in sample:
        inst = sample.pred_instances_3d
        tensor = inst.bboxes_3d.tensor.detach().cpu()
        scores = inst.scores_3d.detach().cpu()
        labels = inst.labels_3d.detach().cpu()
        for row, score, label in zip(tensor.tolist(), scores.tolist(),
                                     labels.tolist()):
            if score < score_thr:
                continue
            box = dict(zip(('x', 'y', 'z', 'l', 'h', 'w', 'yaw'), row[:7]))
            if len(row) >= 9:
                box['velocity'] = row[7:9]
            box['score'], box['label'] = score, int(label)
            box['class'] = name(label)
            out['boxes'].append(box)
    inst = sample.get('pred_instances', None)
    if inst is not None and all(k in inst
                                for k in ('bboxes', 'scores', 'labels')):
        for row, score, label in zip(inst.bboxes.detach().cpu().tolist(),
                                     inst.scores.detach().cpu().tolist(),
                                     inst.labels.detach().cpu().tolist()):
            if score < score_thr:
                continue
            box = dict(zip(('x1', 'y1', 'x2', 'y2'), row[:4]))
            box['score'], box['label'] = score, int(label)
            box['class'] = name(label)
            out['boxes_2d'].append(box)
    return out


def _visualizer():
    from mmdet3d.visualization import Det3DLocalVisualizer
    return Det3DLocalVisualizer(name=f'ddml_infer_{time.time_ns()}')


def draw_mono_3d_predictions(image: np.ndarray,
                             cam2img: np.ndarray,
                             boxes: Sequence[Mapping],
                             out_file: Optional[str] = None,
                             visualizer=None) -> np.ndarray:
    """The image with the projected 3D boxes of :func:`predictions_to_dict`.

    Boxes are drawn with mmdet3d's ``Det3DLocalVisualizer``
    (``draw_proj_bboxes_3d``: edges and a shaded front face), coloured by
    class and labelled with class and score; boxes reaching behind the
    camera are not drawn (their corners do not project).

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        cam2img (np.ndarray): The camera matrix the boxes were predicted
            with.
        boxes (Sequence[Mapping]): The ``boxes`` of
            :func:`predictions_to_dict`.
        out_file (str, optional): Where to write the picture.
        visualizer (Det3DLocalVisualizer, optional): One to reuse.

    Returns:
        np.ndarray: The picture, (H, W, 3) uint8 RGB.
    """
    import mmcv

    from mmdet3d.structures import CameraInstance3DBoxes
    vis = visualizer if visualizer is not None else _visualizer()
    vis.set_image(image)
    h, w = image.shape[:2]
    if boxes:
        bboxes_3d = CameraInstance3DBoxes(
            torch.tensor(
                [[b[k] for k in ('x', 'y', 'z', 'l', 'h', 'w', 'yaw')]
                 for b in boxes],
                dtype=torch.float32))
        front = (bboxes_3d.corners[..., 2].min(dim=1).values > 0.1).numpy()
        shown = [b for b, keep in zip(boxes, front) if keep]
        if shown:
            bboxes_3d = bboxes_3d[torch.from_numpy(front)]
            colours = [_PALETTE[b['label'] % len(_PALETTE)] for b in shown]
            vis.draw_proj_bboxes_3d(
                bboxes_3d,
                dict(cam2img=np.asarray(cam2img)),
                edge_colors=colours,
                face_colors=colours,
                line_widths=1.5,
                alpha=0.2)
            corners = _project(bboxes_3d.corners.numpy(), cam2img)
            tops = np.stack([corners[..., 0].min(1), corners[..., 1].min(1)],
                            axis=1)
            tops = np.clip(tops, [0, 0], [max(w - 40, 0), max(h - 12, 0)])
            vis.draw_texts(
                [f'{b["class"]} {b["score"]:.2f}' for b in shown],
                tops,
                font_sizes=max(6, min(12, int(h / 30))),
                colors='white',
                vertical_alignments='bottom',
                bboxes=[
                    dict(facecolor=np.array(c) / 255, alpha=0.6, pad=0.5,
                         edgecolor='none') for c in colours
                ])
    # boxes reaching outside the image must not widen the axes
    vis.ax_save.set_xlim(0, w)
    vis.ax_save.set_ylim(h, 0)
    picture = vis.get_image()[:h, :w]
    if out_file is not None:
        mmcv.imwrite(picture[..., ::-1], out_file)
    return picture


def _project(points: np.ndarray, cam2img: np.ndarray) -> np.ndarray:
    """Pixel coordinates of camera-frame points (..., 3)."""
    mat = np.asarray(cam2img, dtype=np.float64)
    homo = np.concatenate([points, np.ones(points.shape[:-1] + (1, ))], -1)
    uvw = homo @ _as_4x4(mat[:3, :4] if mat.shape[1] >= 4 else mat)[:3].T
    return uvw[..., :2] / np.clip(uvw[..., 2:3], 1e-5, None)


def output_paths(images: Sequence[str], out_dir: str) -> List[Tuple[str, str]]:
    """``(picture, json)`` paths in ``out_dir`` for each image.

    Named after the image (``<stem>.png``, ``<stem>.json``); images of the
    same name get ``_2``, ``_3``, ... in the order given.

    Raises:
        InferenceInputError: A picture would overwrite an input image.
    """
    taken: Dict[str, int] = {}
    out = []
    inputs = {osp.realpath(p) for p in images}
    for path in images:
        stem = osp.splitext(osp.basename(path))[0]
        n = taken.get(stem, 0) + 1
        taken[stem] = n
        name = stem if n == 1 else f'{stem}_{n}'
        picture = osp.join(out_dir, name + '.png')
        if osp.realpath(picture) in inputs:
            raise InferenceInputError(
                f'--out-dir {out_dir}: the picture of {path} would overwrite '
                'an input image; choose another folder')
        out.append((picture, osp.join(out_dir, name + '.json')))
    return out


def infer_images(
        model: torch.nn.Module,
        images: Sequence[str],
        cam2imgs: Union[np.ndarray, Sequence[np.ndarray]],
        out_dir: str,
        score_thr: float = 0.3,
        sources: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """Predict each image; write its picture and JSON into ``out_dir``.

    Args:
        model (nn.Module): From :func:`init_model`.
        images (Sequence[str]): Image files.
        cam2imgs (np.ndarray | Sequence[np.ndarray]): One camera matrix for
            all images, or one per image.
        out_dir (str): Output folder (created).
        score_thr (float): Boxes below this score are left out of picture
            and JSON. Defaults to 0.3 (as mmdet3d's demos).
        sources (Mapping, optional): Extra fields for every JSON (e.g.
            ``config``, ``checkpoint``).

    Returns:
        list[dict]: Per image ``image``, ``picture``, ``json`` (paths) and
        ``num_boxes``.

    Raises:
        InferenceInputError: An image is missing or unreadable, the number
            of camera matrices is neither 1 nor the number of images, or
            ``out_dir`` is not a folder.
    """
    if isinstance(cam2imgs, np.ndarray) and cam2imgs.ndim == 2:
        cam2imgs = [cam2imgs] * len(images)
    cam2imgs = list(cam2imgs)
    if len(cam2imgs) == 1:
        cam2imgs = cam2imgs * len(images)
    if len(cam2imgs) != len(images):
        raise InferenceInputError(
            f'--calib: {len(cam2imgs)} calibration files for {len(images)} '
            'images; give one for all images or one per image')
    for path in images:  # all checked before any is run
        check_image(path)
    check_out_dir(out_dir)
    paths = output_paths(images, out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise InferenceInputError(
            f'--out-dir {out_dir}: cannot be created ({err.strerror}); give '
            'a folder you can write to') from None
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    pipeline = mono_test_pipeline(model.cfg)
    vis = _visualizer()
    results = []
    for idx, (img_path, cam2img, (picture, json_path)) in enumerate(
            zip(images, cam2imgs, paths)):
        image = read_image(img_path)
        cam2img = _as_4x4(np.asarray(cam2img, dtype=np.float64)[:4, :4])
        sample = inference_mono_image(
            model, img_path, cam2img, pipeline, sample_idx=idx)
        preds = predictions_to_dict(sample, classes, score_thr)
        draw_mono_3d_predictions(
            image, cam2img, preds['boxes'], picture, visualizer=vis)
        record = dict(
            image=osp.abspath(img_path),
            image_size=[int(image.shape[1]),
                        int(image.shape[0])],
            cam2img=cam2img.tolist(),
            **dict(sources or {}),
            classes=list(classes) if classes else None,
            score_thr=float(score_thr),
            box_convention=BOX_CONVENTION,
            boxes=preds['boxes'])
        if preds['boxes_2d']:
            record['boxes_2d'] = preds['boxes_2d']
        with open(json_path, 'w') as f:
            json.dump(record, f, indent=1)
        results.append(
            dict(
                image=img_path,
                picture=picture,
                json=json_path,
                num_boxes=len(preds['boxes'])))
    return results
