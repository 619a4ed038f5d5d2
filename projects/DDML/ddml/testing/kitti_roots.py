"""KITTI roots for tests: one frame rebuilt from its mmdet3d info.

mmdet3d's test frames ship images and mmdet3d infos but not KITTI
label/calib text files; these builders rebuild a KITTI root for a frame from
its info, writing the files with :mod:`ddml.data_tools.kitti_io` (labels
with full ``repr`` precision), so the converter's output can be compared
with mmdet3d's own infos (:func:`compare_infos`).
"""
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data_tools.kitti_io import format_calib, write_label_file

__all__ = [
    'build_root_from_v2_info', 'build_root_from_v1_info', 'compare_infos'
]


def _write_frame(root: Path, name: str, img_src: Path, calib: dict,
                 objects: List[dict], velo_src: Optional[Path]) -> None:
    """Image, calibration, labels and a one-frame train split."""
    for folder in ('image_2', 'label_2', 'calib'):
        (root / 'training' / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(img_src, root / 'training' / 'image_2' / f'{name}.png')
    if velo_src is not None:
        (root / 'training' / 'velodyne').mkdir(exist_ok=True)
        shutil.copy(velo_src, root / 'training' / 'velodyne' / f'{name}.bin')
    (root / 'training' / 'calib' / f'{name}.txt').write_text(
        format_calib(calib))
    write_label_file(root / 'training' / 'label_2' / f'{name}.txt', objects,
                     decimals=None)
    (root / 'ImageSets').mkdir(exist_ok=True)
    (root / 'ImageSets' / 'train.txt').write_text(name + '\n')
    (root / 'ImageSets' / 'val.txt').write_text('')


def _label(name: str, truncated: float, occluded: int, alpha: float,
           bbox: Sequence[float], lhw: Sequence[float],
           location: Sequence[float], rotation_y: float) -> dict:
    """A label object of :mod:`kitti_io` (dimensions written h, w, l)."""
    return dict(
        name=name,
        truncated=truncated,
        occluded=occluded,
        alpha=alpha,
        bbox=list(bbox),
        dimensions=[lhw[1], lhw[2], lhw[0]],
        location=list(location),
        rotation_y=rotation_y)


def build_root_from_v2_info(info: dict,
                            categories: Dict[str, int],
                            img_src: Path,
                            root: Path,
                            velo_src: Optional[Path] = None) -> Path:
    """KITTI root for one frame of an mmdet3d v2 info.

    Args:
        info (dict): One ``data_list`` entry (labels from ``instances``,
            calibration from ``images`` and ``lidar_points``).
        categories (dict[str, int]): The infos' ``metainfo.categories``;
            labels outside it are written as ``DontCare``.
        img_src (Path): The frame's image.
        root (Path): The KITTI root to write (created as needed).
        velo_src (Path, optional): The frame's point cloud.

    Returns:
        Path: ``root``.
    """
    name = f"{info['sample_idx']:06d}"
    images, lidar = info['images'], info['lidar_points']
    calib = {f'P{i}': images[f'CAM{i}']['cam2img'] for i in range(4)}
    calib.update(
        R0_rect=images['R0_rect'],
        Tr_velo_to_cam=lidar['Tr_velo_to_cam'],
        Tr_imu_to_velo=lidar['Tr_imu_to_velo'])
    label2cat = {v: k for k, v in categories.items() if v != -1}
    objects = []
    for ins in info['instances']:
        box = ins['bbox_3d']
        objects.append(
            _label(
                label2cat.get(ins['bbox_label'], 'DontCare'),
                ins['truncated'], ins['occluded'], ins['alpha'], ins['bbox'],
                box[3:6], box[:3], box[6]))
    _write_frame(root, name, img_src, calib, objects, velo_src)
    return root


def build_root_from_v1_info(info: dict, img_src: Path, root: Path) -> Path:
    """KITTI root for one frame of an mmdet3d v1 (``annos``) info.

    Args:
        info (dict): One v1 info (``image``, ``calib``, ``annos``).
        img_src (Path): The frame's image.
        root (Path): The KITTI root to write (created as needed).

    Returns:
        Path: ``root``.
    """
    name = f"{info['image']['image_idx']:06d}"
    annos = info['annos']
    objects = [
        _label(
            str(annos['name'][i]), annos['truncated'][i],
            int(annos['occluded'][i]), annos['alpha'][i], annos['bbox'][i],
            annos['dimensions'][i], annos['location'][i],
            annos['rotation_y'][i]) for i in range(len(annos['name']))
    ]
    _write_frame(root, name, img_src, info['calib'], objects, None)
    return root


def compare_infos(mine,
                  ref,
                  path: str = '',
                  skip: Sequence[str] = (),
                  rtol: float = 1e-6,
                  atol: float = 2e-4) -> List[str]:
    """Field-by-field differences between two info trees.

    Numbers are compared with ``rtol``/``atol`` (float32 rounding noise of
    ``center_2d``/``lidar2cam`` is about 1 ulp); ints, strings, bools and
    key sets exactly. Keys whose name is in ``skip`` are ignored.

    Args:
        mine: The tree under test (dicts, lists, numbers, strings).
        ref: The reference tree.
        path (str): Path of this node in the messages. Defaults to ''.
        skip (Sequence[str]): Key names to ignore. Defaults to ().
        rtol (float): Relative tolerance of numbers. Defaults to 1e-6.
        atol (float): Absolute tolerance of numbers. Defaults to 2e-4.

    Returns:
        list[str]: One message per difference, empty when equal.
    """
    diffs = []
    if isinstance(ref, dict):
        if not isinstance(mine, dict):
            return [f'{path}: {type(mine).__name__} != dict']
        ka, kb = set(mine) - set(skip), set(ref) - set(skip)
        if ka != kb:
            diffs.append(f'{path}: keys {sorted(ka ^ kb)} differ')
        for k in sorted(ka & kb):
            diffs += compare_infos(mine[k], ref[k], f'{path}/{k}', skip,
                                   rtol, atol)
    elif isinstance(ref, (list, tuple)):
        if not isinstance(mine, (list, tuple)) or len(mine) != len(ref):
            return [f'{path}: {mine!r} != {ref!r}']
        for i, (a, b) in enumerate(zip(mine, ref, strict=True)):
            diffs += compare_infos(a, b, f'{path}[{i}]', skip, rtol, atol)
    elif isinstance(ref, (bool, str)) or ref is None:
        if mine != ref or type(mine) is not type(ref):
            diffs.append(f'{path}: {mine!r} != {ref!r}')
    elif isinstance(ref, (int, np.integer)) and not isinstance(
            ref, (float, np.floating)):
        if not isinstance(mine, (int, np.integer)) or int(mine) != int(ref):
            diffs.append(f'{path}: {mine!r} != {ref!r}')
    else:
        if not np.isclose(float(mine), float(ref), rtol=rtol, atol=atol):
            diffs.append(f'{path}: {mine!r} != {ref!r}')
    return diffs
