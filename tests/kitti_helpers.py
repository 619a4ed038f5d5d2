"""Helpers for the dataset tests: temporary KITTI roots built in tmp_path.

The real frames in ``../shared/data`` ship images and mmdet3d infos but
not KITTI label/calib text files; these helpers rebuild a KITTI root for a
frame from its info (labels and calibration written with full ``repr``
precision) so our converter can be compared with mmdet3d's output. Nothing
is ever written into the repository.
"""
import shutil
from pathlib import Path

import numpy as np

CALIB_SHAPES = (('P0', (3, 4)), ('P1', (3, 4)), ('P2', (3, 4)),
                ('P3', (3, 4)), ('R0_rect', (3, 3)),
                ('Tr_velo_to_cam', (3, 4)), ('Tr_imu_to_velo', (3, 4)))


def _fmt(v) -> str:
    return repr(float(v))


def _write_common(root: Path, name: str, img_src: Path, calib: dict,
                  velo_src=None) -> None:
    for d in ('image_2', 'label_2', 'calib'):
        (root / 'training' / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(img_src, root / 'training' / 'image_2' / f'{name}.png')
    if velo_src is not None:
        (root / 'training' / 'velodyne').mkdir(exist_ok=True)
        shutil.copy(velo_src, root / 'training' / 'velodyne' / f'{name}.bin')
    with open(root / 'training' / 'calib' / f'{name}.txt', 'w') as f:
        for key, (r, c) in CALIB_SHAPES:
            mat = np.asarray(calib[key], dtype=np.float64)[:r, :c]
            f.write(key + ': ' + ' '.join(_fmt(v) for v in mat.ravel()) +
                    '\n')
    (root / 'ImageSets').mkdir(exist_ok=True)
    (root / 'ImageSets' / 'train.txt').write_text(name + '\n')
    (root / 'ImageSets' / 'val.txt').write_text('')


def build_root_from_v2_info(info: dict, categories: dict, img_src: Path,
                            root: Path, velo_src=None) -> Path:
    """KITTI root for one frame of an mmdet3d v2 info (labels from
    ``instances``, calibration from ``images``/``lidar_points``)."""
    name = f"{info['sample_idx']:06d}"
    ims, lp = info['images'], info['lidar_points']
    calib = {f'P{i}': ims[f'CAM{i}']['cam2img'] for i in range(4)}
    calib.update(
        R0_rect=ims['R0_rect'],
        Tr_velo_to_cam=lp['Tr_velo_to_cam'],
        Tr_imu_to_velo=lp['Tr_imu_to_velo'])
    _write_common(root, name, img_src, calib, velo_src)
    label2cat = {v: k for k, v in categories.items() if v != -1}
    with open(root / 'training' / 'label_2' / f'{name}.txt', 'w') as f:
        for ins in info['instances']:
            b = ins['bbox_3d']
            vals = [_fmt(ins['truncated']), str(ins['occluded']),
                    _fmt(ins['alpha'])] + [_fmt(v) for v in ins['bbox']]
            vals += [_fmt(b[4]), _fmt(b[5]), _fmt(b[3])]
            vals += [_fmt(v) for v in b[:3]] + [_fmt(b[6])]
            f.write(' '.join([label2cat.get(ins['bbox_label'], 'DontCare')] +
                             vals) + '\n')
    return root


def build_root_from_v1_info(info: dict, img_src: Path, root: Path) -> Path:
    """KITTI root for one frame of an mmdet3d v1 (``annos``) info."""
    name = f"{info['image']['image_idx']:06d}"
    _write_common(root, name, img_src, info['calib'])
    a = info['annos']
    with open(root / 'training' / 'label_2' / f'{name}.txt', 'w') as f:
        for i in range(len(a['name'])):
            lhw = a['dimensions'][i]
            vals = [_fmt(a['truncated'][i]), str(int(a['occluded'][i])),
                    _fmt(a['alpha'][i])] + [_fmt(v) for v in a['bbox'][i]]
            vals += [_fmt(lhw[1]), _fmt(lhw[2]), _fmt(lhw[0])]
            vals += [_fmt(v) for v in a['location'][i]]
            vals += [_fmt(a['rotation_y'][i])]
            f.write(' '.join([str(a['name'][i])] + vals) + '\n')
    return root


def compare_infos(mine, ref, path='', skip=(), rtol=1e-6, atol=2e-4):
    """Field-by-field differences between two info trees (list of str).

    Numbers are compared with ``rtol``/``atol`` (float32 rounding noise of
    ``center_2d``/``lidar2cam`` is ~1 ulp); ints, strings, bools and key
    sets exactly. Keys whose name is in ``skip`` are ignored.
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
        for i, (a, b) in enumerate(zip(mine, ref)):
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
