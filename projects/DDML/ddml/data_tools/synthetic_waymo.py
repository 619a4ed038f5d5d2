"""Render a synthetic dataset in the layout mmdet3d's Waymo converter writes.

The scenes are those of :mod:`ddml.data_tools.synthetic_kitti` (the same
renderer, :func:`~ddml.data_tools.synthetic_kitti.render_frame`, given a
different camera and size priors): a flat textured ground, Car, Pedestrian
and Cyclist objects as flat-shaded 3D boxes standing on it, exact labels.
What changes is the sensor and the files:

* **Camera**: Waymo's front camera, 1920x1280 px, with the intrinsics and
  the mounting (1.54 m ahead of the vehicle frame's origin, 2.12 m above
  the ground) of a real Waymo calibration (mmdet3d 1.4's Waymo test infos,
  context ``10017090168044687777_6380_000_6400_000``;
  :data:`WAYMO_FRONT_INTRINSICS`, :data:`WAYMO_FRONT_CAMERA_POSITION`).
  Its axes are the vehicle frame's (x forward, y left, z up) permuted to a
  camera's: real front cameras are within about 1 degree of that, and a
  level camera is what keeps the camera-frame boxes of ``cam_instances``
  exact (a box turned about a tilted axis is no yaw-about-y box).
  ``scale`` shrinks the image and the intrinsics' first two rows with it.
* **Objects**: Waymo's mean class sizes (:data:`WAYMO_CLASS_PRIORS`, those
  of mmdet3d's PGD Waymo config) on the ground plane ``z = 0`` of the
  vehicle (LiDAR) frame.
* **LiDAR point counts**: a ray-cast scan of Waymo's top LiDAR (64 beams
  from -17.6 to +2.4 degrees, 2650 azimuth steps, 75 m;
  :func:`lidar_point_counts`) gives every box its ``num_lidar_pts``, which
  sets Waymo's difficulty (LEVEL_2 for 5 points or fewer) and, at 0, drops
  the box as the converter does (``filter_empty_3dboxes``). No point cloud
  is written: ``lidar_points`` names the file the converter would write.
* **Files**, as ``tools/create_data.py waymo`` of mmdet3d 1.4 writes them
  under ``kitti_format/`` (the output directory plays that role; point a
  config's ``data_root`` at it): ``training/image_0/<idx>.jpg`` (train and
  val), ``testing/image_0/<idx>.jpg`` (the held-out split),
  ``ImageSets/{train,val,trainval[,test]}.txt`` and
  ``waymo_infos_{train,val,trainval[,test]}.pkl`` in mmdet3d's v2 Waymo
  format (``Waymo2KITTI.create_waymo_info_file``): ``sample_idx``
  (``<prefix><file:03d><frame:03d>``, prefix 0 train, 1 val, 2 test),
  ``timestamp``, ``ego2global``, ``context_name``, ``images['CAM_FRONT']``
  (``img_path``, ``height``, ``width``, ``lidar2cam``, ``cam2img``,
  ``lidar2img``), ``lidar_points``, LiDAR-frame ``instances`` (bottom
  centre, ``num_lidar_pts``), ``cam_sync_instances`` (the visible ones) and
  ``cam_instances['CAM_FRONT']`` (camera boxes, projected 2D boxes by the
  converter's rule, ``center_2d``, ``depth``). Label indices follow
  ``WaymoDataset.METAINFO['classes']`` (:data:`WAYMO_CLASSES`).

Each frame is an independent scene, so each is its own context (segment)
with no sweeps; ``ego2global`` is the identity. The labelled held-out split
(``num_test``) draws from the KITTI renderer's held-out seed stream
(:data:`~ddml.data_tools.synthetic_kitti.HELDOUT_STREAM`) and sits where the
converter puts Waymo's test split (``testing/``, prefix 2), with labels;
read it with ``data_prefix=waymo_data_prefix('test')``.
Output is byte-identical for a seed whatever the number of workers (JPEG
bytes depend on the PIL/libjpeg build).
"""
import io
import os
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from PIL import Image

from .kitti_io import atomic_dump_pickle, atomic_write_bytes
from .synthetic_kitti import (HELDOUT_STREAM, RenderedFrame, SceneLayout,
                              SyntheticCamera, _frame_rng, render_frame)

__all__ = [
    'WAYMO_IMAGE_SIZE', 'WAYMO_FRONT_INTRINSICS',
    'WAYMO_FRONT_CAMERA_POSITION', 'WAYMO_CLASSES', 'WAYMO_CLASS_PRIORS',
    'WAYMO_LAYOUT', 'WAYMO_METAINFO', 'TOP_LIDAR_POSITION',
    'TOP_LIDAR_INCLINATION_DEG', 'TOP_LIDAR_BEAMS', 'TOP_LIDAR_AZIMUTHS',
    'TOP_LIDAR_RANGE', 'SPLIT_PREFIXES', 'waymo_camera',
    'camera_to_lidar_boxes', 'lidar_point_counts', 'waymo_frame_info',
    'waymo_data_prefix', 'make_waymo_dataset'
]

PathLike = Union[str, os.PathLike]

#: Image size (width, height) of Waymo's front camera, px.
WAYMO_IMAGE_SIZE = (1920, 1280)
#: Front-camera intrinsics (fx, fy, cx, cy), px at 1920x1280: ``cam2img``
#: of mmdet3d 1.4's Waymo test info (training frame 0000000, context
#: 10017090168044687777_6380_000_6400_000), to 1e-3 px.
WAYMO_FRONT_INTRINSICS = (2059.612, 2059.612, 952.412, 634.587)
#: Optical centre of the front camera in the vehicle (= mmdet3d's Waymo
#: LiDAR) frame, metres (x forward, y left, z up from the ground): that
#: frame's ``-R^T t`` of ``lidar2cam``, to 1 mm.
WAYMO_FRONT_CAMERA_POSITION = (1.539, -0.024, 2.116)
#: Classes of mmdet3d's Waymo infos, in label order (``WaymoDataset``).
WAYMO_CLASSES = ('Car', 'Pedestrian', 'Cyclist')
#: Class sampling probability, mean size (l, h, w) and size std, metres:
#: the means are mmdet3d's Waymo class sizes (``base_dims`` of its PGD
#: Waymo config); spreads and probabilities as the KITTI renderer's.
WAYMO_CLASS_PRIORS: Dict[str, dict] = {
    'Car': dict(p=0.6, size=(4.73, 1.77, 2.08), std=(0.45, 0.12, 0.12)),
    'Pedestrian': dict(p=0.25, size=(0.91, 1.74, 0.84),
                       std=(0.15, 0.1, 0.08)),
    'Cyclist': dict(p=0.15, size=(1.81, 1.77, 0.84), std=(0.15, 0.08, 0.08)),
}
#: General Waymo scenes: three classes out to 75 m (the range of Waymo's
#: labels and of its top LiDAR), otherwise :class:`SceneLayout`'s defaults.
WAYMO_LAYOUT = SceneLayout(
    class_probs=tuple((n, WAYMO_CLASS_PRIORS[n]['p']) for n in WAYMO_CLASSES),
    depth_range=(4.0, 75.0))
#: ``metainfo`` of the info files, as mmdet3d 1.4's converter writes it.
WAYMO_METAINFO = dict(
    dataset='waymo', version='waymo_v1.4', info_version='mmdet3d_v1.4')

#: Waymo's top LiDAR in the vehicle frame, metres (its nominal mounting).
TOP_LIDAR_POSITION = (1.43, 0.0, 2.184)
#: Lowest and highest beam inclination of the top LiDAR, degrees.
TOP_LIDAR_INCLINATION_DEG = (-17.6, 2.4)
#: Beams (rows of its range image) and azimuth steps (columns).
TOP_LIDAR_BEAMS = 64
TOP_LIDAR_AZIMUTHS = 2650
#: Maximum range of the top LiDAR (and of Waymo's labels), metres.
TOP_LIDAR_RANGE = 75.0

#: Info split -> (``sample_idx`` prefix, folder), as the converter has it.
SPLIT_PREFIXES = dict(train=(0, 'training'), val=(1, 'training'),
                      test=(2, 'testing'))
#: Camera-frame axes of the vehicle frame (``T_front_cam_to_ref`` of the
#: converter): x right = -y, y down = -z, z forward = x.
_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
#: First timestamp (microseconds; 2020-09-13), frames 0.1 s apart.
_TIMESTAMP0 = 1_600_000_000_000_000
_JPEG_QUALITY = 95


def waymo_camera(scale: float = 1.0) -> SyntheticCamera:
    """Waymo's front camera, level, optionally scaled.

    ``calib`` holds the info file's matrices: ``cam2img`` (3, 4) (the first
    two rows scaled by ``scale``), ``lidar2cam`` (4, 4) (the vehicle frame's
    axes permuted to the camera's, origin at
    :data:`WAYMO_FRONT_CAMERA_POSITION`) and ``lidar2img`` (3, 4). The
    label frame is the camera frame, the ground ``y = 2.116`` m in it.

    Args:
        scale (float): Image scale factor (1.0 = 1920x1280). Defaults to 1.

    Returns:
        SyntheticCamera: The camera (``projection_key='cam2img'``).
    """
    if scale <= 0:
        raise ValueError(f'scale must be positive, got {scale}')
    fx, fy, cx, cy = WAYMO_FRONT_INTRINSICS
    cam2img = np.array([[fx, 0.0, cx, 0.0], [0.0, fy, cy, 0.0],
                        [0.0, 0.0, 1.0, 0.0]])
    cam2img[:2] *= scale
    position = np.array(WAYMO_FRONT_CAMERA_POSITION)
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = _AXES
    lidar2cam[:3, 3] = -_AXES @ position
    w, h = WAYMO_IMAGE_SIZE
    return SyntheticCamera(
        width=int(round(w * scale)),
        height=int(round(h * scale)),
        calib=dict(cam2img=cam2img, lidar2cam=lidar2cam,
                   lidar2img=cam2img @ lidar2cam),
        projection_key='cam2img',
        ground_y=float(position[2]))


def camera_to_lidar_boxes(boxes: np.ndarray,
                          lidar2cam: np.ndarray) -> np.ndarray:
    """Camera boxes of a level camera -> mmdet3d LiDAR boxes, exactly.

    Args:
        boxes (np.ndarray): (N, 7) ``(x, y, z, l, h, w, ry)``, bottom centre
            in the camera frame, yaw about its y axis.
        lidar2cam (np.ndarray): (4, 4) transform whose rotation is the axis
            permutation of :func:`waymo_camera`.

    Returns:
        np.ndarray: (N, 7) float64 ``(x, y, z, l, w, h, yaw)``, bottom
        centre in the LiDAR frame, yaw about z in ``[-pi, pi)``
        (``ry = -yaw - pi/2``, mmdet3d's ``Box3DMode`` convention).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    lidar2cam = np.asarray(lidar2cam, dtype=np.float64)
    if not np.allclose(lidar2cam[:3, :3], _AXES, atol=1e-12):
        raise ValueError('camera_to_lidar_boxes needs a level camera (the '
                         'rotation of lidar2cam a pure axis permutation)')
    rot, t = lidar2cam[:3, :3], lidar2cam[:3, 3]
    xyz = (boxes[:, :3] - t) @ rot  # R^T (p - t), row vectors
    yaw = -boxes[:, 6] - np.pi / 2
    yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
    return np.concatenate(
        [xyz, boxes[:, [3, 5, 4]], yaw[:, None]], axis=1)


def _top_lidar_rays() -> Tuple[np.ndarray, np.ndarray]:
    """Beam inclinations (B,) and column azimuths (A,) of the top LiDAR,
    radians; column 0 looks backwards (+pi), azimuth decreasing."""
    lo, hi = np.radians(TOP_LIDAR_INCLINATION_DEG)
    incl = np.linspace(lo, hi, TOP_LIDAR_BEAMS)
    az = np.pi - 2 * np.pi * (np.arange(TOP_LIDAR_AZIMUTHS) + 0.5) / \
        TOP_LIDAR_AZIMUTHS
    return incl, az


def lidar_point_counts(boxes: np.ndarray) -> np.ndarray:
    """Returns of a simulated top-LiDAR scan that land on each box.

    Every ray of the scan (:data:`TOP_LIDAR_BEAMS` x
    :data:`TOP_LIDAR_AZIMUTHS`, from :data:`TOP_LIDAR_POSITION`, one return,
    :data:`TOP_LIDAR_RANGE`) stops at the first box it meets, or at the
    ground ``z = 0``; a box's count is the number of rays that stop on it
    (the points Waymo counts in the box), so boxes hidden behind others
    get fewer and fully hidden ones none.

    Args:
        boxes (np.ndarray): (N, 7) mmdet3d LiDAR boxes ``(x, y, z, l, w,
            h, yaw)`` with bottom centres, in the vehicle frame.

    Returns:
        np.ndarray: (N,) int64 point counts.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    origin = np.array(TOP_LIDAR_POSITION)
    incl, az = _top_lidar_rays()
    ids, hit_t, owner = [], [], []
    for k, (x, y, z, length, width, height, yaw) in enumerate(boxes):
        centre = np.array([x, y, z + height / 2])
        half = np.array([length, width, height]) / 2
        c, s = np.cos(yaw), np.sin(yaw)
        # Footprint corners -> the azimuth span the box covers.
        local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * half[:2]
        corners = centre[:2] + local @ np.array([[c, s], [-s, c]])
        phi_c = np.arctan2(centre[1] - origin[1], centre[0] - origin[0])
        d = np.arctan2(corners[:, 1] - origin[1], corners[:, 0] - origin[0])
        d = (d - phi_c + np.pi) % (2 * np.pi) - np.pi
        rel = (az - phi_c + np.pi) % (2 * np.pi) - np.pi
        cols = np.flatnonzero((rel >= d.min()) & (rel <= d.max()))
        if len(cols) == 0:
            continue
        # Rays (beams x columns) in the box's frame; slab test.
        ce, se = np.cos(incl)[:, None], np.sin(incl)[:, None]
        dirs = np.stack(np.broadcast_arrays(ce * np.cos(az[cols]),
                                            ce * np.sin(az[cols]), se),
                        axis=-1).reshape(-1, 3)
        rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        o_loc = rot @ (origin - centre)
        d_loc = dirs @ rot.T
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (-half - o_loc) / d_loc
            t2 = (half - o_loc) / d_loc
        # Axis-parallel rays: inside the slab -> any t, else none.
        par = d_loc == 0
        inside = np.abs(o_loc) <= half
        t1 = np.where(par, np.where(inside, -np.inf, np.inf), t1)
        t2 = np.where(par, np.where(inside, np.inf, -np.inf), t2)
        t_near = np.minimum(t1, t2).max(axis=1)
        t_far = np.maximum(t1, t2).min(axis=1)
        hit = (t_near <= t_far) & (t_far > 0)
        t_hit = np.maximum(t_near, 0.0)
        hit &= t_hit <= TOP_LIDAR_RANGE
        rows = np.repeat(np.arange(TOP_LIDAR_BEAMS), len(cols))
        ray = rows * TOP_LIDAR_AZIMUTHS + np.tile(cols, TOP_LIDAR_BEAMS)
        ids.append(ray[hit])
        hit_t.append(t_hit[hit])
        owner.append(np.full(int(hit.sum()), k))
    if not ids:
        return np.zeros(n, np.int64)
    ids, hit_t, owner = (np.concatenate(a) for a in (ids, hit_t, owner))
    nearest = np.full(TOP_LIDAR_BEAMS * TOP_LIDAR_AZIMUTHS, np.inf)
    np.minimum.at(nearest, ids, hit_t)
    # The ground stops downward rays first where it is nearer.
    sin_incl = np.sin(incl)[ids // TOP_LIDAR_AZIMUTHS]
    with np.errstate(divide='ignore'):
        t_ground = np.where(sin_incl < 0, -origin[2] / sin_incl, np.inf)
    first = (hit_t == nearest[ids]) & (hit_t <= t_ground)
    return np.bincount(owner[first], minlength=n).astype(np.int64)


def _f32(values) -> list:
    """Nested lists of Python floats through float32 (as the converter)."""
    return np.asarray(values, dtype=np.float64).astype(np.float32).tolist()


def waymo_frame_info(frame: RenderedFrame, cam: SyntheticCamera,
                     sample_idx: int, context_name: str,
                     timestamp: int) -> dict:
    """mmdet3d v2 Waymo info of one rendered frame.

    Follows ``Waymo2KITTI.create_waymo_info_file`` of mmdet3d 1.4 (key
    order included): ``instances`` are the painted boxes with LiDAR points
    (:func:`lidar_point_counts`) in the LiDAR frame, ``cam_sync_instances``
    those of them with a visible pixel (the front camera their most visible
    one), ``cam_instances['CAM_FRONT']`` all ``instances`` as camera boxes
    with the converter's 2D box (projected corners' hull clipped to the
    image), projected gravity centre and depth.

    Args:
        frame (RenderedFrame): Output of :func:`render_frame` with ``cam``.
        cam (SyntheticCamera): Camera of :func:`waymo_camera`.
        sample_idx (int): ``<prefix><file:03d><frame:03d>`` as an int.
        context_name (str): The frame's segment name.
        timestamp (int): Microseconds.

    Returns:
        dict: The frame's info.
    """
    name = f'{sample_idx:07d}'
    lidar2cam = cam.calib['lidar2cam']
    cam2img = cam.calib['cam2img']
    cam_boxes = np.array(
        [[*b['loc'], b['lhw'][0], b['lhw'][1], b['lhw'][2], b['ry']]
         for b in frame.boxes], dtype=np.float64).reshape(-1, 7)
    lidar_boxes = camera_to_lidar_boxes(cam_boxes, lidar2cam)
    points = lidar_point_counts(lidar_boxes)

    instances, cam_sync, cam_front = [], [], []
    for box, cam_box, lidar_box, n_pts in zip(frame.boxes, cam_boxes,
                                              lidar_boxes, points,
                                              strict=True):
        if n_pts < 1:  # the converter's filter_empty_3dboxes
            continue
        label = WAYMO_CLASSES.index(box['name'])
        inst = dict(
            group_id=len(instances) + 1,
            camera_id=0,
            bbox=list(box['box2d']),
            bbox_label=label,
            bbox_3d=_f32(lidar_box),
            bbox_label_3d=label,
            num_lidar_pts=int(n_pts))
        instances.append(inst)
        if box['visible_pixels'] > 0:
            cam_sync.append(dict(inst, group_id=len(cam_sync) + 1,
                                 bbox=list(inst['bbox']),
                                 bbox_3d=list(inst['bbox_3d'])))
        # Gravity centre, projected as mmdet3d's points_cam2img.
        centre = cam_box[:3] - np.array([0.0, cam_box[4] / 2, 0.0])
        uvw = cam2img[:, :3] @ centre + cam2img[:, 3]
        cam_front.append(
            dict(
                # np.float64, as the converter's (shapely bounds via numpy)
                bbox=[np.float64(v) for v in box['box2d']],
                bbox_label=label,
                bbox_3d=_f32(cam_box),
                bbox_label_3d=label,
                center_2d=[float(uvw[0] / uvw[2]), float(uvw[1] / uvw[2])],
                depth=float(uvw[2]),
                bbox_3d_isvalid=True,
                velocity=-1))
    return dict(
        sample_idx=int(sample_idx),
        timestamp=int(timestamp),
        ego2global=_f32(np.eye(4)),
        context_name=context_name,
        images=dict(
            CAM_FRONT=dict(
                img_path=f'{name}.jpg',
                height=int(cam.height),
                width=int(cam.width),
                lidar2cam=_f32(lidar2cam),
                cam2img=_f32(cam2img),
                lidar2img=_f32(cam.calib['lidar2img']))),
        lidar_points=dict(lidar_path=f'{name}.bin', num_pts_feats=6),
        instances=instances,
        cam_sync_instances=cam_sync,
        cam_instances=dict(CAM_FRONT=cam_front))


def waymo_data_prefix(split: str) -> dict:
    """``data_prefix`` of a ``WaymoDataset`` reading info split ``split``.

    Args:
        split (str): ``train``, ``val``, ``trainval`` or ``test``.

    Returns:
        dict: ``pts`` and ``CAM_FRONT`` (``image_0``) .. ``CAM_SIDE_RIGHT``
        (``image_4``) under ``training/`` or ``testing/``, as mmdet3d's
        Waymo configs write them.
    """
    if split not in ('train', 'val', 'trainval', 'test'):
        raise ValueError(f'unknown Waymo info split {split!r}; choose from '
                         "['test', 'train', 'trainval', 'val']")
    folder = 'testing' if split == 'test' else 'training'
    cams = ('CAM_FRONT', 'CAM_FRONT_LEFT', 'CAM_FRONT_RIGHT', 'CAM_SIDE_LEFT',
            'CAM_SIDE_RIGHT')
    prefix = dict(pts=f'{folder}/velodyne')
    prefix.update({c: f'{folder}/image_{i}' for i, c in enumerate(cams)})
    return prefix


def _encode_jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='JPEG', quality=_JPEG_QUALITY)
    return buf.getvalue()


def _sample_idx(split: str, k: int) -> int:
    """``sample_idx`` of the ``k``-th frame of a split: the converter's
    ``<prefix><file:03d><frame:03d>`` with ``file * 1000 + frame = k``."""
    if not 0 <= k < 10**6:
        raise ValueError(f'at most 10**6 frames a split, got index {k}')
    return SPLIT_PREFIXES[split][0] * 10**6 + k


def _write_frame(job: Tuple[str, int, str, int, int, float, SceneLayout,
                            Mapping[str, dict]]) -> Tuple[str, int, dict]:
    out_dir, seed, split, k, idx, scale, layout, priors = job
    cam = waymo_camera(scale)
    stream = HELDOUT_STREAM if split == 'test' else ()
    frame = render_frame(_frame_rng(seed, idx, stream), cam, layout, priors)
    sample_idx = _sample_idx(split, k)
    name = f'{sample_idx:07d}'
    folder = SPLIT_PREFIXES[split][1]
    atomic_write_bytes(
        Path(out_dir) / folder / 'image_0' / f'{name}.jpg',
        _encode_jpeg(frame.image))
    info = waymo_frame_info(
        frame, cam, sample_idx,
        context_name=f'synthetic_seed{seed}_{name}',
        timestamp=_TIMESTAMP0 + sample_idx * 100_000)
    return split, k, info


def make_waymo_dataset(out_dir: PathLike,
                       num_train: int,
                       num_val: int,
                       seed: int = 0,
                       scale: float = 1.0,
                       workers: Optional[int] = None,
                       progress: bool = True,
                       layout: Optional[SceneLayout] = None,
                       num_test: int = 0,
                       extra_tag: str = 'waymo',
                       priors: Optional[Mapping[str, dict]] = None
                       ) -> Dict[str, Path]:
    """Render a Waymo-format (``kitti_format``) dataset and its infos.

    Frames are rendered from the per-frame seeds of the KITTI renderer:
    train frame ``k`` from index ``k``, val frame ``k`` from index
    ``num_train + k`` (so a train frame does not depend on ``num_val``),
    held-out frame ``k`` from index ``k`` of the held-out stream.

    Args:
        out_dir (str | PathLike): Dataset root to create (the
            ``kitti_format`` folder; a config's ``data_root``).
        num_train (int): Number of training frames.
        num_val (int): Number of validation frames.
        seed (int): Random seed. Defaults to 0.
        scale (float): Image scale (1.0 = 1920x1280). Defaults to 1.
        workers (int, optional): Worker processes; defaults to
            ``min(2, os.cpu_count())``. Output does not depend on it.
        progress (bool): Show a tqdm progress bar. Defaults to True.
        layout (SceneLayout, optional): What the frames hold. Defaults to
            :data:`WAYMO_LAYOUT`.
        num_test (int): Frames of the labelled held-out split in
            ``testing/`` (``{extra_tag}_infos_test.pkl``). Defaults to 0 (an
            existing ``testing/`` folder is then refused).
        extra_tag (str): Info file prefix. Defaults to 'waymo'.
        priors (Mapping[str, dict], optional): Class size priors. Defaults
            to :data:`WAYMO_CLASS_PRIORS`.

    Returns:
        dict[str, Path]: Info split (train, val, trainval[, test]) -> file.
    """
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError('num_train and num_val must be >= 0 and not both 0,'
                         f' got {num_train} and {num_val}')
    if num_test < 0:
        raise ValueError(f'num_test must be >= 0, got {num_test}')
    for n_split in (num_train, num_val, num_test):
        if n_split > 10**6:
            raise ValueError('at most 10**6 frames a split (sample_idx has '
                             f'6 digits after the prefix), got {n_split}')
    root = Path(out_dir)
    if not num_test and (root / 'testing').is_dir():
        raise FileExistsError(
            f'{root / "testing"} exists but num_test is 0: it would hold '
            'frames no info file of this rendering describes; remove that '
            'folder or pass num_test (--num-test)')
    layout = layout if layout is not None else WAYMO_LAYOUT
    priors = dict(priors if priors is not None else WAYMO_CLASS_PRIORS)
    unknown = [c for c, _ in layout.class_probs if c not in WAYMO_CLASSES]
    if unknown:
        raise ValueError(f'layout classes {unknown} are not Waymo classes '
                         f'{list(WAYMO_CLASSES)}')
    counts = dict(train=num_train, val=num_val, test=num_test)
    first = dict(train=0, val=num_train, test=0)
    jobs = [(str(root), int(seed), split, k, first[split] + k, float(scale),
             layout, priors) for split in ('train', 'val', 'test')
            for k in range(counts[split])]
    for folder in {SPLIT_PREFIXES[s][1] for s, n in counts.items() if n}:
        (root / folder / 'image_0').mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc='render', unit='frame')
    infos: Dict[str, List[Optional[dict]]] = {
        s: [None] * n for s, n in counts.items()}

    def collect(result):
        split, k, info = result
        infos[split][k] = info
        if bar is not None:
            bar.update(1)

    if workers > 1 and len(jobs) > 1:
        with get_context('fork').Pool(workers) as pool:
            for result in pool.imap_unordered(_write_frame, jobs,
                                              chunksize=4):
                collect(result)
    else:
        for job in jobs:
            collect(_write_frame(job))
    if bar is not None:
        bar.close()

    lists = dict(train=infos['train'], val=infos['val'],
                 trainval=infos['train'] + infos['val'])
    if num_test:
        lists['test'] = infos['test']
    (root / 'ImageSets').mkdir(parents=True, exist_ok=True)
    written = {}
    for split, data_list in lists.items():
        atomic_write_bytes(
            root / 'ImageSets' / f'{split}.txt',
            ''.join(f'{i["sample_idx"]:07d}\n' for i in data_list).encode())
        path = root / f'{extra_tag}_infos_{split}.pkl'
        atomic_dump_pickle(
            dict(data_list=data_list, metainfo=dict(WAYMO_METAINFO)), path)
        written[split] = path
    return written
