"""Make mmdet3d 1.4's ``MonoDet3DInferencer`` run.

Upstream behaviour fixed (open-mmlab/mmdetection3d #2868, #2881, #2981,
all open): ``Base3DInferencer._dispatch_kwargs`` takes ``cam_type`` as a
parameter of its own and only turns it into the visualiser's output folder
(``cam_type_dir``), so ``__call__`` never receives it and always looks the
image up as ``data_info['images']['CAM2']`` (mmdet3d's
``demo/mono_det_demo.py`` even drops its ``--cam-type`` before calling).
Every info file without a ``CAM2`` camera (nuScenes, Waymo's
``CAM_FRONT``, ...) stops with ``KeyError: 'CAM2'``. The inferencer also
requires ``lidar2cam`` in the info, which a camera-only info need not have,
and cannot take an image with intrinsics of one's own (#2721).

The fix, for ``MonoDet3DInferencer`` only:

* ``_dispatch_kwargs`` hands ``cam_type`` to ``_inputs_to_list`` too;
* ``_inputs_to_list`` reads the requested camera when the info has it,
  otherwise the camera whose image file is the input's, otherwise the
  info's only camera; when none fits, a ``KeyError`` that lists the
  info's cameras. ``lidar2cam`` defaults to the identity (the monocular
  pipeline does not use it), and an input ``dict(img=..., cam2img=K)``
  without ``infos`` runs with the camera matrix ``K``;
* ``_init_model`` builds and loads the model with
  :func:`ddml.apis.inference.init_model`, so ddml's
  ``DepthDiscriminativeDetector`` configs build (the wrapper takes no
  ``train_cfg``, which mmdet3d's version sets) and a wrapper checkpoint
  loads into the plain config of its detector. Unlike mmdet3d's
  non-strict ``load_checkpoint``, a checkpoint that does not fit the
  config is refused (``InferenceInputError``) instead of leaving weights
  at random. Weights that are not a local file go to mmdet3d's version.

When applied: always, by :func:`ddml.compat.apply_patches` (which
``import ddml`` calls). An info that has ``CAM2`` and an input of the
upstream form are read as before.
"""
import os.path as osp
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ['fix_mono_inferencer', 'resolve_camera']


def resolve_camera(images: Mapping,
                   cam_type: str,
                   img: Optional[Union[str, np.ndarray]] = None) -> str:
    """The camera of an info's ``images`` that holds the input image.

    Args:
        images (Mapping): An mmdet3d v2 info's ``images``.
        cam_type (str): The camera asked for (mmdet3d's default 'CAM2').
        img (str | np.ndarray, optional): The input image (a path is
            matched by file name).

    Returns:
        str: ``cam_type`` when the info has that camera with an image;
        else the camera whose ``img_path`` has the input's file name; else
        the only camera with an image.

    Raises:
        KeyError: None of these fits; the message lists the cameras.
    """
    cameras = [
        key for key, cam in images.items()
        if isinstance(cam, Mapping) and 'img_path' in cam
    ]
    if cam_type in cameras:
        return cam_type
    if isinstance(img, str):
        named = [
            key for key in cameras
            if osp.basename(images[key]['img_path']) == osp.basename(img)
        ]
        if len(named) == 1:
            return named[0]
    if len(cameras) == 1:
        return cameras[0]
    raise KeyError(
        f"the info has no camera {cam_type!r} (cameras with an image: "
        f"{', '.join(cameras) or 'none'}) and none of them holds "
        f"{osp.basename(img) if isinstance(img, str) else 'the image'}; "
        'pass cam_type=<one of them>')


def _as_4x4(matrix) -> np.ndarray:
    mat = np.asarray(matrix, dtype=np.float32)
    out = np.eye(4, dtype=np.float32)
    out[:min(mat.shape[0], 4), :min(mat.shape[1], 4)] = mat[:4, :4]
    return out


def _attach_info(single_input: dict, data_info: Mapping,
                 cam_type: str) -> None:
    """``cam2img``, ``lidar2cam`` and ``lidar2img`` of the input's camera
    (as mmdet3d's ``_inputs_to_list``, with :func:`resolve_camera`)."""
    cam = resolve_camera(data_info['images'], cam_type,
                         single_input.get('img'))
    camera = data_info['images'][cam]
    img_path = camera['img_path']
    if isinstance(single_input['img'], str) and \
            osp.basename(img_path) != osp.basename(single_input['img']):
        raise ValueError(f'the info file of {img_path} is not provided.')
    cam2img = np.asarray(camera['cam2img'], dtype=np.float32)
    lidar2cam = np.asarray(
        camera.get('lidar2cam', np.eye(4)), dtype=np.float32)
    if 'lidar2img' in camera:
        lidar2img = np.asarray(camera['lidar2img'], dtype=np.float32)
    else:
        lidar2img = _as_4x4(cam2img) @ lidar2cam
    single_input['cam2img'] = cam2img
    single_input['lidar2cam'] = lidar2cam
    single_input['lidar2img'] = lidar2img


def _attach_own_camera(single_input: dict) -> None:
    """An input with its own ``cam2img`` (no info file)."""
    cam2img = _as_4x4(single_input['cam2img'])
    single_input['cam2img'] = cam2img
    single_input.setdefault('lidar2cam', np.eye(4, dtype=np.float32))
    single_input.setdefault('lidar2img', cam2img @ single_input['lidar2cam'])


def _inputs_to_list(self,
                    inputs: Union[dict, Sequence[dict]],
                    cam_type: str = 'CAM2',
                    **kwargs) -> list:
    """mmdet3d's ``MonoDet3DInferencer._inputs_to_list`` with the camera
    resolved by :func:`resolve_camera`, ``lidar2cam`` optional, and inputs
    ``dict(img=..., cam2img=...)`` without ``infos``."""
    import mmengine
    from mmengine.fileio import (get_file_backend, isdir, join_path,
                                 list_dir_or_file)
    if isinstance(inputs, dict) and 'infos' not in inputs:
        if 'cam2img' not in inputs:
            raise ValueError(
                "an input needs 'infos' (an mmdet3d info file) or "
                "'cam2img' (the image's camera matrix)")
        inputs = [inputs]
    if isinstance(inputs, dict):
        infos = inputs.pop('infos')
        if isinstance(inputs['img'], str):
            img = inputs['img']
            backend = get_file_backend(img)
            if hasattr(backend, 'isdir') and isdir(img):
                inputs = [{
                    'img': join_path(img, name)
                } for name in list_dir_or_file(img, list_dir=False)]
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        info_list = mmengine.load(infos)['data_list']
        if len(info_list) != len(inputs):
            raise ValueError(f'{infos} holds {len(info_list)} frame(s) for '
                             f'{len(inputs)} image(s)')
        for single_input, data_info in zip(inputs, info_list):
            _attach_info(single_input, data_info, cam_type)
    elif isinstance(inputs, (list, tuple)):
        for single_input in inputs:
            if 'infos' not in single_input:
                if 'cam2img' not in single_input:
                    raise ValueError(
                        "an input needs 'infos' (an mmdet3d info file) or "
                        "'cam2img' (the image's camera matrix)")
                _attach_own_camera(single_input)
                continue
            infos = single_input.pop('infos')
            info_list = mmengine.load(infos)['data_list']
            if len(info_list) != 1:
                raise ValueError(
                    f'{infos} holds {len(info_list)} frames; an input of a '
                    'list needs an info file of its one frame')
            _attach_info(single_input, info_list[0], cam_type)
    return list(inputs)


def _dispatch_kwargs(self, out_dir: str = '', cam_type: str = '', **kwargs):
    """mmdet3d's ``Base3DInferencer._dispatch_kwargs``, which also hands
    ``cam_type`` to the preprocessing (upstream drops it there)."""
    dispatch = _UPSTREAM['_dispatch_kwargs']
    preprocess, forward, visualize, postprocess = dispatch(
        self, out_dir=out_dir, cam_type=cam_type, **kwargs)
    if cam_type != '':
        preprocess['cam_type'] = cam_type
    return preprocess, forward, visualize, postprocess


def _init_model(self, cfg, weights: Optional[str], device: str = 'cpu'):
    """Build with :func:`ddml.apis.inference.init_model` (ddml's wrapper,
    strict loading), then the palette as mmdet3d's ``_init_model``."""
    from copy import deepcopy

    from mmdet3d.registry import DATASETS

    from ..apis.inference import init_model
    if weights is not None and not osp.isfile(weights):
        return _UPSTREAM['_init_model'](self, cfg, weights, device)
    self._convert_syncbn(cfg.model)
    model = init_model(cfg, weights, device=device)
    test_dataset_cfg = deepcopy(cfg.test_dataloader.dataset)
    test_dataset_cfg['lazy_init'] = True  # only the metainfo is needed
    palette = DATASETS.build(test_dataset_cfg).metainfo.get('palette')
    if palette is not None:
        model.dataset_meta['palette'] = palette
    return model


#: mmdet3d's methods that :func:`fix_mono_inferencer` replaced, by name.
_UPSTREAM: Dict[str, Callable] = {}


def fix_mono_inferencer() -> None:
    """Patch ``MonoDet3DInferencer`` (idempotent).

    Each replaced method keeps mmdet3d's under ``__wrapped__``.
    """
    from mmdet3d.apis.inferencers import MonoDet3DInferencer
    if getattr(MonoDet3DInferencer._inputs_to_list, '_ddml_fixed', False):
        return
    fixes = [('_dispatch_kwargs', _dispatch_kwargs),
             ('_inputs_to_list', _inputs_to_list),
             ('_init_model', _init_model)]
    for name, fixed in fixes:
        original = getattr(MonoDet3DInferencer, name)
        _UPSTREAM[name] = original
        fixed.__wrapped__ = original
        fixed._ddml_fixed = True
        setattr(MonoDet3DInferencer, name, fixed)
