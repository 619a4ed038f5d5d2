"""Convert a KITTI object-detection root into mmdet3d v2 info files.

The output is what mmdet3d 1.4's ``tools/create_data.py kitti`` writes after
``update_infos_to_v2.py`` (``kitti_converter.create_kitti_info_file`` +
``update_kitti_infos`` + ``convert_utils.get_kitti_style_2d_boxes``), so
:class:`mmdet3d.datasets.KittiDataset` (all ``load_type`` s) and
:class:`mmdet3d.evaluation.KittiMetric` accept it. It is written without
importing mmdet3d, reads calibration by key instead of by line position,
validates every input and writes atomically.

Layout of one ``data_list`` entry (``info``)::

    sample_idx: int                     # frame index, e.g. 7 for 000007
    images:
      CAM0, CAM1, CAM3: {cam2img (4x4 P_i), lidar2img (4x4 P_i @ lidar2cam)}
      CAM2: {img_path '000007.png', height, width, cam2img, lidar2cam,
             lidar2img}
      R0_rect: 4x4 (float32 values)
    lidar_points: {num_pts_feats 4, lidar_path '000007.bin',
                   Tr_velo_to_cam 4x4, Tr_imu_to_velo 4x4 (float32 values)}
    instances: [ one per label line, DontCare included:
      {bbox [x1,y1,x2,y2] (label 2D box, px), bbox_label (-1 if ignored),
       bbox_3d [x,y,z,l,h,w,ry] (camera coords, bottom centre, m, rad),
       bbox_label_3d, depth (m), center_2d [u,v] (px, projected gravity
       centre), num_lidar_pts, difficulty (0/1/2, -1), truncated, occluded,
       alpha, score, index, group_id} ]
    cam_instances: {'CAM2': [ one per non-ignored object in front of the
      camera whose projection meets the image:
      {bbox_label, bbox_label_3d, bbox (projected 3D box clipped to the
       image, px), bbox_3d_isvalid True, bbox_3d [x,y,z,l,h,w,ry] (float32
       values), velocity -1, center_2d [u,v], depth; and, ddml only
       (mmdet3d does not write them): bbox_annotated [x1,y1,x2,y2] (the
       label 2D box, px, as ``instances[*]['bbox']``) and difficulty
       (0/1/2, -1, by MonoDLE's rule, see :func:`kitti_difficulty`)} ]}

The two ``difficulty`` fields differ on purpose: ``instances`` keeps
mmdet3d's value (``y2 - y1 > 40`` px for easy), ``cam_instances`` carries
the rule of MonoDLE's and DDML's releases (``y2 - y1 + 1 >= 40`` px), which
is what their training rules read (``MonoDLEHead.skip_unknown_difficulty``,
``DepthDiscriminativeDetector.min_difficulty``).

Note that ``instances[*]['bbox_3d']`` is in *camera* coordinates, as
mmdet3d writes it: ``KittiDataset.parse_ann_info`` converts it to LiDAR
coordinates with ``images['CAM2']['lidar2cam']`` and ``KittiMetric`` reads it
back as KITTI ``location/dimensions/rotation_y``.
"""
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .kitti_io import (KittiFormatError, atomic_dump_pickle, read_calib_file,
                       read_imageset_file, read_label_file)

__all__ = [
    'KITTI_CLASSES', 'KITTI_CAM_CLASSES', 'SPLIT_FOLDERS',
    'split_image_prefix', 'create_kitti_infos',
    'kitti_frame_info', 'kitti_metainfo', 'project_to_image',
    'box3d_corners_camera', 'projected_box2d', 'count_points_in_boxes',
    'kitti_difficulty', 'DIFFICULTY_RULES', 'INFO_VERSION'
]

PathLike = Union[str, os.PathLike]

#: ``update_kitti_infos``' METAINFO classes (their index is ``bbox_label``).
KITTI_CLASSES: Tuple[str, ...] = ('Pedestrian', 'Cyclist', 'Car', 'Van',
                                  'Truck', 'Person_sitting', 'Tram', 'Misc')
#: Version of what :func:`create_kitti_infos` writes beyond mmdet3d's format;
#: bumped when it changes, so that cached data is converted again (2: each
#: ``cam_instances`` entry carries the object's ``difficulty``; 3: and its
#: label 2D box ``bbox_annotated``, and that difficulty follows MonoDLE's
#: rule, see :func:`kitti_difficulty`).
INFO_VERSION = 3
#: Classes that get ``cam_instances`` (mmdet3d ``convert_utils``).
KITTI_CAM_CLASSES: Tuple[str, ...] = KITTI_CLASSES

_SPLITS = ('train', 'val', 'test')
#: The frame folder of each info split: KITTI keeps its held-out frames in
#: ``testing/`` (labelled there only in synthetic data, see
#: :func:`create_kitti_infos`).
SPLIT_FOLDERS = dict(train='training', val='training', trainval='training',
                     test='testing')


def split_image_prefix(split: str) -> str:
    """``data_prefix['img']`` of a dataset reading info split ``split``.

    Args:
        split (str): ``train``, ``val``, ``trainval`` or ``test``.

    Returns:
        str: ``training/image_2`` or ``testing/image_2``.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f'unknown KITTI info split {split!r}; choose from '
                         f'{sorted(SPLIT_FOLDERS)}')
    return f'{SPLIT_FOLDERS[split]}/image_2'


def _extend(mat: np.ndarray) -> np.ndarray:
    """Pad a 3x4 or 3x3 matrix to 4x4 with ``[0, 0, 0, 1]``."""
    out = np.eye(4, dtype=np.float64)
    out[:mat.shape[0], :mat.shape[1]] = mat
    return out


def project_to_image(points: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """Project camera-frame points like mmdet3d's ``points_cam2img``.

    mmdet3d converts numpy inputs to float32 tensors, so the result carries
    float32 precision; this reproduces it (returned as float64).

    Args:
        points (np.ndarray): (N, 3) points in rectified camera coordinates,
            metres.
        proj (np.ndarray): (3, 4) or (4, 4) projection matrix (``P2``).

    Returns:
        np.ndarray: (N, 3) ``[u, v, depth]`` (pixels, pixels, metres).
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    mat = np.eye(4, dtype=np.float32)
    p = np.asarray(proj, dtype=np.float32)
    mat[:p.shape[0], :p.shape[1]] = p
    pts4 = np.concatenate([pts, np.ones((len(pts), 1), np.float32)], axis=1)
    out = pts4 @ mat.T
    uv = out[:, :2] / out[:, 2:3]
    return np.concatenate([uv, out[:, 2:3]], axis=1).astype(np.float64)


def box3d_corners_camera(centers: np.ndarray,
                         dims: np.ndarray,
                         yaws: np.ndarray,
                         origin: Sequence[float] = (0.5, 1.0, 0.5)
                         ) -> np.ndarray:
    """Corners of camera-frame 3D boxes (KITTI convention).

    Corner order is mmdet3d's ``box_np_ops.center_to_corner_box3d``. The
    rotation by ``ry`` around camera Y maps box-local ``(x, z)`` to
    ``(x cos ry + z sin ry, -x sin ry + z cos ry)``, so a box with
    ``ry = 0`` has its length along camera X (KITTI devkit readme).

    Args:
        centers (np.ndarray): (N, 3) box reference points, metres (the
            bottom centre for the default ``origin``).
        dims (np.ndarray): (N, 3) sizes ``l, h, w`` along box-local x, y, z,
            metres.
        yaws (np.ndarray): (N,) ``rotation_y``, rad.
        origin (Sequence[float]): Relative position of ``centers`` inside
            the box. Defaults to (0.5, 1.0, 0.5), the bottom centre.

    Returns:
        np.ndarray: (N, 8, 3) corners in camera coordinates, dtype of
        ``dims``.
    """
    dims = np.asarray(dims)
    dtype = dims.dtype
    norm = np.array(
        [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1],
         [1, 1, 1], [1, 1, 0]],
        dtype=dtype) - np.asarray(origin, dtype=dtype)
    corners = dims.reshape(-1, 1, 3) * norm.reshape(1, 8, 3)
    yaws = np.asarray(yaws).reshape(-1)
    c = np.cos(yaws).astype(dtype)[:, None]
    s = np.sin(yaws).astype(dtype)[:, None]
    x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]
    rotated = np.stack([x * c + z * s, y, -x * s + z * c], axis=-1)
    return rotated + np.asarray(centers, dtype=dtype).reshape(-1, 1, 3)


def projected_box2d(corners: np.ndarray, proj: np.ndarray,
                    width: int, height: int) -> Optional[List[float]]:
    """2D box of a projected 3D box clipped to the image canvas.

    Reproduces mmdet3d's ``get_kitti_style_2d_boxes``: corners behind the
    camera (z <= 0) are dropped, the convex hull of the remaining projected
    corners is intersected with the canvas ``[0, width] x [0, height]``.

    Args:
        corners (np.ndarray): (8, 3) corners in camera coordinates, metres.
        proj (np.ndarray): (3, 4) or (4, 4) projection matrix.
        width (int): Image width, px.
        height (int): Image height, px.

    Returns:
        list[float] | None: ``[x1, y1, x2, y2]`` in px, or None when no
        polygon of the projection meets the image.
    """
    from shapely.geometry import MultiPoint, Polygon, box
    front = corners[corners[:, 2] > 0]
    if len(front) == 0:
        return None
    view = np.eye(4)
    p = np.asarray(proj, dtype=np.float64)
    view[:p.shape[0], :p.shape[1]] = p
    pts = np.concatenate([front.T, np.ones((1, len(front)))])
    pts = (view @ pts)[:3]
    uv = (pts[:2] / pts[2:3]).T
    hull = MultiPoint(uv.tolist()).convex_hull
    canvas = box(0, 0, width, height)
    if not hull.intersects(canvas):
        return None
    inter = hull.intersection(canvas)
    if not isinstance(inter, Polygon):
        return None
    xy = np.array(inter.exterior.coords)
    return [
        float(xy[:, 0].min()),
        float(xy[:, 1].min()),
        float(xy[:, 0].max()),
        float(xy[:, 1].max())
    ]


def count_points_in_boxes(points: np.ndarray, boxes_cam: np.ndarray,
                          rect: np.ndarray, velo2cam: np.ndarray,
                          proj: np.ndarray, width: int,
                          height: int) -> np.ndarray:
    """Count LiDAR points inside camera-frame boxes, as mmdet3d does.

    Like ``_calculate_num_points_in_gt``: points outside the camera
    frustum (depth 0.001-100 m, inside the image) are removed first, then
    the boxes are converted to LiDAR boxes (yaw ``-ry - pi/2`` around LiDAR
    z, bottom centre origin) and points inside are counted.

    Args:
        points (np.ndarray): (N, >=3) LiDAR points, metres.
        boxes_cam (np.ndarray): (M, 7) ``[x, y, z, l, h, w, ry]`` camera
            boxes (bottom centre).
        rect (np.ndarray): (4, 4) ``R0_rect``.
        velo2cam (np.ndarray): (4, 4) ``Tr_velo_to_cam``.
        proj (np.ndarray): (4, 4) ``P2``.
        width (int): Image width, px.
        height (int): Image height, px.

    Returns:
        np.ndarray: (M,) int32 point counts.
    """
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    lidar2cam = rect @ velo2cam
    hom = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
    img = hom @ (proj @ lidar2cam).T
    d = img[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u, v = img[:, 0] / d, img[:, 1] / d
    keep = ((d > 0.001) & (d < 100) & (u > 0) & (u < width) & (v > 0) &
            (v < height))
    xyz = xyz[keep]
    boxes_cam = np.asarray(boxes_cam, dtype=np.float64).reshape(-1, 7)
    if len(boxes_cam) == 0:
        return np.zeros(0, np.int32)
    cam2lidar = np.linalg.inv(lidar2cam)
    centers = np.concatenate(
        [boxes_cam[:, :3], np.ones((len(boxes_cam), 1))], axis=1)
    centers = (centers @ cam2lidar.T)[:, :3]
    ln, h, w = boxes_cam[:, 3], boxes_cam[:, 4], boxes_cam[:, 5]
    yaw = -boxes_cam[:, 6] - np.pi / 2
    diff = xyz[None, :, :] - centers[:, None, :]  # (M, N, 3)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    lx = diff[..., 0] * c + diff[..., 1] * s
    ly = -diff[..., 0] * s + diff[..., 1] * c
    inside = ((np.abs(lx) < ln[:, None] / 2) & (np.abs(ly) < w[:, None] / 2)
              & (diff[..., 2] > 0) & (diff[..., 2] < h[:, None]))
    return inside.sum(1).astype(np.int32)


#: The two conventions of KITTI's difficulty levels (see
#: :func:`kitti_difficulty`).
DIFFICULTY_RULES = ('mmdet3d', 'monodle')


def kitti_difficulty(bbox: np.ndarray,
                     occluded: np.ndarray,
                     truncated: np.ndarray,
                     rule: str = 'mmdet3d') -> np.ndarray:
    """KITTI difficulty codes of labelled objects (0 easy, 1 moderate,
    2 hard, -1 none).

    Both rules use KITTI's thresholds (easy: height 40 px, occlusion 0,
    truncation <= 0.15; moderate: 25 px, occlusion <= 1, truncation <= 0.3;
    hard: 25 px, occlusion <= 2, truncation <= 0.5) and differ in the
    height:

    * ``'mmdet3d'`` (``add_difficulty_to_annos`` of mmdet3d's converter, as
      KITTI's evaluation): ``y2 - y1 > threshold``;
    * ``'monodle'`` (``Object3d.get_obj_level`` of MonoDLE's release,
      ``lib/datasets/kitti/kitti_utils.py:34-53``, also DDML's): ``y2 - y1
      + 1 >= threshold``, with the label box stored as float32 first (so an
      object 39-40 px tall is easy there and moderate here, one 24-25 px
      tall hard there and of no difficulty here). Its 'UnKnown' level is
      code -1.

    Args:
        bbox (np.ndarray): (N, 4) label 2D boxes ``x1, y1, x2, y2``, px.
        occluded (np.ndarray): (N, ) occlusion states (0-3).
        truncated (np.ndarray): (N, ) truncation ratios (0-1).
        rule (str): ``'mmdet3d'`` or ``'monodle'``. Defaults to 'mmdet3d'.

    Returns:
        np.ndarray: (N, ) int32 codes.
    """
    if rule not in DIFFICULTY_RULES:
        raise ValueError(f'kitti_difficulty: rule must be one of '
                         f'{DIFFICULTY_RULES}, got {rule!r}')
    min_height, max_occ, max_trunc = (40, 25, 25), (0, 1, 2), (0.15, 0.3, 0.5)
    bbox = np.asarray(bbox, np.float64).reshape(-1, 4)
    occluded = np.asarray(occluded)
    truncated = np.asarray(truncated, np.float64)
    if rule == 'mmdet3d':
        height = bbox[:, 3] - bbox[:, 1]
        tall = [height > min_height[i] for i in range(3)]
    else:
        box32 = bbox.astype(np.float32).astype(np.float64)
        height = box32[:, 3] - box32[:, 1] + 1
        tall = [height >= min_height[i] for i in range(3)]
    masks = [(occluded <= max_occ[i]) & tall[i] &
             (truncated <= max_trunc[i]) for i in range(3)]
    diff = np.full(len(bbox), -1, np.int32)
    diff[masks[2] & ~masks[1]] = 2
    diff[masks[1] & ~masks[0]] = 1
    diff[masks[0]] = 0
    return diff


def _image_size(path: Path) -> Tuple[int, int]:
    """(height, width) of an image, reading only its header."""
    with Image.open(path) as im:
        w, h = im.size
    return h, w


def kitti_frame_info(root: PathLike,
                     idx: int,
                     split_dir: str = 'training',
                     with_labels: bool = True,
                     classes: Sequence[str] = KITTI_CLASSES,
                     ignored: Optional[set] = None) -> dict:
    """Build the v2 info dict of one KITTI frame.

    Args:
        root (str | PathLike): KITTI root (holding ``training/``).
        idx (int): Frame index.
        split_dir (str): ``'training'`` or ``'testing'``.
        with_labels (bool): Read ``label_2`` and fill ``instances`` and
            ``cam_instances``. Defaults to True.
        classes (Sequence[str]): Class names; index = ``bbox_label``;
            others get -1. Defaults to :data:`KITTI_CLASSES`.
        ignored (set, optional): Collects names that got label -1.

    Returns:
        dict: One ``data_list`` entry (layout in the module docstring).
        ``num_lidar_pts`` is counted from ``velodyne/<id>.bin`` when the
        file exists and is -1 otherwise (mmdet3d's value for "no count",
        as for DontCare).

    Raises:
        KittiFormatError: On a missing or malformed image, calib or label.
    """
    root = Path(root)
    name = f'{idx:06d}'
    base = root / split_dir
    img_file = base / 'image_2' / f'{name}.png'
    if not img_file.is_file():
        raise KittiFormatError(img_file, 'image not found')
    try:
        height, width = _image_size(img_file)
    except Exception as e:  # PIL raises several types
        raise KittiFormatError(img_file, f'cannot read image header: {e}')
    calib = read_calib_file(base / 'calib' / f'{name}.txt')

    P = {k: _extend(calib[k]) for k in ('P0', 'P1', 'P2', 'P3')}
    rect = _extend(calib['R0_rect']).astype(np.float32)
    velo2cam = _extend(calib['Tr_velo_to_cam']).astype(np.float32)
    imu2velo = _extend(calib['Tr_imu_to_velo']).astype(np.float32)
    lidar2cam = rect @ velo2cam  # float32, as mmdet3d

    images = {}
    for cam in ('CAM0', 'CAM1', 'CAM2', 'CAM3'):
        images[cam] = dict(cam2img=P['P' + cam[-1]].tolist())
    images['CAM2'] = dict(
        img_path=f'{name}.png',
        height=height,
        width=width,
        cam2img=P['P2'].tolist(),
        lidar2cam=lidar2cam.tolist())
    for cam in ('CAM0', 'CAM1', 'CAM2', 'CAM3'):
        images[cam]['lidar2img'] = (P['P' + cam[-1]] @ lidar2cam).tolist()
    images['R0_rect'] = rect.tolist()

    info = dict(
        sample_idx=idx,
        images=images,
        lidar_points=dict(
            num_pts_feats=4,
            lidar_path=f'{name}.bin',
            Tr_velo_to_cam=velo2cam.tolist(),
            Tr_imu_to_velo=imu2velo.tolist()),
        instances=[])
    if not with_labels:
        info['cam_instances'] = dict(CAM2=[])
        return info

    label_file = base / 'label_2' / f'{name}.txt'
    objs = read_label_file(label_file)
    n = len(objs)
    names = [o['name'] for o in objs]
    bbox = np.array([o['bbox'] for o in objs], np.float64).reshape(n, 4)
    # h, w, l in the file -> l, h, w (camera x, y, z sizes), as mmdet3d.
    dims = np.array([o['dimensions'] for o in objs],
                    np.float64).reshape(n, 3)[:, [2, 0, 1]]
    loc = np.array([o['location'] for o in objs], np.float64).reshape(n, 3)
    rot = np.array([o['rotation_y'] for o in objs], np.float64)
    occ = np.array([o['occluded'] for o in objs], np.int64)
    trunc = np.array([o['truncated'] for o in objs], np.float64)
    for i, o in enumerate(objs):
        if o['name'] != 'DontCare' and min(o['dimensions']) < 0:
            raise KittiFormatError(
                label_file, f"object {i} ({o['name']}) has a negative "
                f"dimension {o['dimensions']}; only DontCare lines may use "
                '-1', field='dimensions')
    difficulty = kitti_difficulty(bbox, occ, trunc, 'mmdet3d')
    # MonoDLE's levels, for the release's training rules (cam_instances)
    difficulty_monodle = kitti_difficulty(bbox, occ, trunc, 'monodle')
    num_obj = sum(nm != 'DontCare' for nm in names)
    # mmdet3d numbers objects assuming DontCare lines come last.
    index = list(range(num_obj)) + [-1] * (n - num_obj)

    velo_file = base / 'velodyne' / f'{name}.bin'
    num_pts = np.full(n, -1, np.int64)
    care = np.array([nm != 'DontCare' for nm in names], bool)
    if velo_file.is_file() and care.any():
        raw = np.fromfile(velo_file, dtype=np.float32)
        if raw.size % 4:
            raise KittiFormatError(
                velo_file, f'{raw.size} floats is not a multiple of 4 '
                '(x, y, z, intensity)')
        boxes = np.concatenate([loc, dims, rot[:, None]], axis=1)[care]
        num_pts[care] = count_points_in_boxes(
            raw.reshape(-1, 4), boxes, rect.astype(np.float64),
            velo2cam.astype(np.float64), P['P2'], width, height)

    gravity = loc + dims * np.array([0.0, -0.5, 0.0])
    centers = project_to_image(gravity, P['P2'])
    instances = []
    cam_instances = []
    for i, o in enumerate(objs):
        label = classes.index(o['name']) if o['name'] in classes else -1
        if label == -1 and ignored is not None:
            ignored.add(o['name'])
        instances.append(
            dict(
                bbox=bbox[i].tolist(),
                bbox_label=label,
                bbox_3d=np.concatenate([loc[i], dims[i],
                                        rot[i:i + 1]]).tolist(),
                bbox_label_3d=label,
                depth=float(centers[i, 2]),
                center_2d=centers[i, :2].tolist(),
                num_lidar_pts=int(num_pts[i]),
                difficulty=int(difficulty[i]),
                truncated=float(trunc[i]),
                occluded=int(occ[i]),
                alpha=float(o['alpha']),
                score=float(o['score']),
                index=int(index[i]),
                group_id=i))
        if o['name'] not in KITTI_CAM_CLASSES:
            continue
        # mmdet3d's get_kitti_style_2d_boxes works in float32.
        box32 = np.concatenate([loc[i], dims[i], rot[i:i + 1]]).astype(
            np.float32)
        corners = box3d_corners_camera(
            gravity[i:i + 1].astype(np.float32), box32[None, 3:6],
            box32[None, 6], origin=(0.5, 0.5, 0.5))[0]
        box2d = projected_box2d(corners, P['P2'], width, height)
        if box2d is None or centers[i, 2] <= 0:
            continue
        cam_instances.append(
            dict(
                bbox_label=label,
                bbox_label_3d=label,
                bbox=box2d,
                bbox_3d_isvalid=True,
                bbox_3d=box32.tolist(),
                velocity=-1,
                center_2d=centers[i, :2].tolist(),
                depth=float(centers[i, 2]),
                # not in mmdet3d's cam_instances (module docstring): the
                # label 2D box (LoadAnnotatedBoxes2D) and MonoDLE's level
                # (LoadObjectDifficulty)
                bbox_annotated=bbox[i].tolist(),
                difficulty=int(difficulty_monodle[i])))
    info['instances'] = instances
    info['cam_instances'] = dict(CAM2=cam_instances)
    return info


def kitti_metainfo(ignored: Iterable[str] = (),
                   classes: Sequence[str] = KITTI_CLASSES) -> dict:
    """``metainfo`` of the info files (as ``update_kitti_infos``).

    Args:
        ignored (Iterable[str]): Names mapped to -1 (``DontCare`` is always
            included).
        classes (Sequence[str]): Class names.

    Returns:
        dict: ``{'categories': {name: label}, 'dataset': 'kitti',
        'info_version': '1.1'}``.
    """
    categories = {k: i for i, k in enumerate(classes)}
    for name in sorted(set(ignored) | {'DontCare'}):
        categories[name] = -1
    return dict(categories=categories, dataset='kitti', info_version='1.1')


def _check_lists_match(root: Path) -> None:
    """Raise when ``image_2`` and ``label_2`` hold different frame ids."""
    img_dir = root / 'training' / 'image_2'
    lbl_dir = root / 'training' / 'label_2'
    for d in (img_dir, lbl_dir):
        if not d.is_dir():
            raise KittiFormatError(
                d, 'folder not found; a KITTI root has training/image_2, '
                'training/label_2 and training/calib')
    imgs = {p.stem for p in img_dir.glob('*.png')}
    lbls = {p.stem for p in lbl_dir.glob('*.txt')}
    if imgs != lbls:
        only_img = sorted(imgs - lbls)[:5]
        only_lbl = sorted(lbls - imgs)[:5]
        raise KittiFormatError(
            lbl_dir, 'image and label lists do not match: '
            f'{len(imgs - lbls)} images without a label (e.g. '
            f'{[str(img_dir / (s + ".png")) for s in only_img]}) and '
            f'{len(lbls - imgs)} labels without an image (e.g. '
            f'{[str(lbl_dir / (s + ".txt")) for s in only_lbl]}); add or '
            'remove files so every image has a label')


def _convert_split(root: Path, split_file: Path, split_dir: str,
                   with_labels: bool, ignored: set, progress: bool,
                   desc: str) -> List[dict]:
    ids = read_imageset_file(split_file)
    with open(split_file) as f:
        line_of = {}
        n = 0
        for lineno, raw in enumerate(f, start=1):
            if raw.strip():
                line_of[n] = lineno
                n += 1
    infos = []
    it: Iterable = enumerate(ids)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(ids), desc=desc, unit='frame')
    for k, idx in it:
        img = root / split_dir / 'image_2' / f'{idx:06d}.png'
        if not img.is_file():
            raise KittiFormatError(
                split_file, f'frame {idx:06d} is listed but {img} does not '
                'exist; image and split lists do not match', line_of[k],
                'frame index')
        try:
            infos.append(
                kitti_frame_info(
                    root, idx, split_dir, with_labels, ignored=ignored))
        except KittiFormatError as e:
            raise KittiFormatError(
                e.path, f'{e.message} (frame {idx:06d} '
                f'listed in {split_file}:{line_of[k]})', e.line,
                e.field) from None
    return infos


def create_kitti_infos(root_path: PathLike,
                       out_dir: Optional[PathLike] = None,
                       extra_tag: str = 'kitti',
                       progress: bool = True) -> Dict[str, Path]:
    """Write ``{extra_tag}_infos_{train,val,trainval[,test]}.pkl``.

    The ``test`` split (``ImageSets/test.txt``, frames in ``testing/``) is
    written when ``testing/`` exists; with ``testing/label_2`` (a labelled
    held-out split, as :mod:`ddml.data_tools.synthetic_kitti` renders it)
    its infos carry the labels, without it (KITTI's own test split) only
    images and calibration.

    Everything is read and validated before anything is written; each file
    is written to a temporary name and renamed, so a failure leaves no
    partial or new file behind.

    Args:
        root_path (str | PathLike): KITTI root with ``ImageSets/``,
            ``training/{image_2,label_2,calib}`` (``velodyne`` optional) and
            optionally ``testing/{image_2,calib[,label_2]}``.
        out_dir (str | PathLike, optional): Output folder. Defaults to
            ``root_path``.
        extra_tag (str): File name prefix. Defaults to 'kitti'.
        progress (bool): Show tqdm progress bars. Defaults to True.

    Returns:
        dict[str, Path]: Split name -> written file.

    Raises:
        KittiFormatError: On missing/malformed inputs; the message names the
            file, line and field.
    """
    root = Path(root_path)
    out = Path(out_dir) if out_dir is not None else root
    if not root.is_dir():
        raise KittiFormatError(root, 'KITTI root folder not found')
    _check_lists_match(root)
    sets = root / 'ImageSets'
    ignored: set = set()
    data = {}
    for split in ('train', 'val'):
        data[split] = _convert_split(root, sets / f'{split}.txt', 'training',
                                     True, ignored, progress, split)
    if (root / 'testing').is_dir():
        data['test'] = _convert_split(
            root, sets / 'test.txt', 'testing',
            (root / 'testing' / 'label_2').is_dir(), ignored, progress,
            'test')
    meta = kitti_metainfo(ignored)
    data['trainval'] = data['train'] + data['val']
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in ('train', 'val', 'trainval', 'test'):
        if split not in data:
            continue
        path = out / f'{extra_tag}_infos_{split}.pkl'
        atomic_dump_pickle(dict(metainfo=meta, data_list=data[split]), path)
        written[split] = path
    return written
