"""Render a small synthetic dataset in KITTI object-detection format.

The scenes are deliberately simple but geometrically exact: KITTI's real
camera model (``P2`` of KITTI's 2011-09-26 recordings, 1242x375 px), a flat
textured ground 1.65 m below the camera meeting the horizon, and Car,
Pedestrian and Cyclist objects as flat-shaded 3D boxes standing on the
ground, painted far to near so that they occlude each other. Depth is only
observable through image cues (apparent size, ground contact row, occlusion
order, perspective of the ground texture): object colours are drawn
independently of depth, shading depends only on the face normal and a fixed
light direction, and there is no haze.

Labels follow the KITTI devkit readme (``devkit_object/readme.txt``):

* ``bbox``: the 8 projected corners' bounding box clipped to
  ``[0, W-1] x [0, H-1]`` (0-based pixels), as in KITTI label files.
* ``truncated``: the fraction of the projected silhouette (convex hull of
  the corners) that lies outside the image.
* ``occluded``: from the fraction ``f`` of the in-image silhouette pixels
  still showing after all objects are painted: 0 if ``f >= 0.95``, 1 if
  ``f >= 0.6``, else 2. Objects with ``0 < f < 0.15`` are written as
  ``DontCare`` lines (2D box of their visible pixels, the other fields -1 /
  -10 / -1000 as in KITTI) so the few pixels they show are not counted as
  false positives; objects with no visible pixel (fully hidden or outside
  the image) are not written at all.
* ``alpha = rotation_y - atan2(x, z)`` wrapped to ``[-pi, pi]``.
* ``dimensions`` h, w, l; ``location`` the bottom centre in rectified camera
  coordinates; ``rotation_y``. Sizes, locations and yaw are quantised to
  the 2 decimals of a label file *before* rendering, so the written labels
  describe the rendered geometry exactly (2D values to 0.005 px).

Every frame has its own ``numpy.random.Generator`` seeded by
``(seed, frame_index)``, so output is byte-identical for a seed regardless
of the number of worker processes. The held-out ``test`` split (frames in
``testing/``, labelled) draws from a stream of its own
(:data:`HELDOUT_STREAM`), so its frames are independent of the train/val
frames of the same seed, and adding or resizing it changes no train/val
byte.

The camera is a parameter (:class:`SyntheticCamera`: image size,
projection matrix, height of the ground) and so are the class sizes
(``priors`` of :func:`render_frame`):
:mod:`ddml.data_tools.synthetic_waymo` renders the same scenes through
Waymo's front camera with Waymo's sizes and writes them in mmdet3d's Waymo
format. The KITTI output does not depend on that
(``tests/test_data_tools/test_synthetic_kitti_bytes.py``).
"""
import os
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from .kitti_io import atomic_write_bytes, format_calib, write_label_file

__all__ = [
    'KITTI_P2', 'KITTI_IMAGE_SIZE', 'CAMERA_HEIGHT', 'CLASS_PRIORS',
    'SceneLayout', 'DEMO_LAYOUT',
    'SyntheticCamera', 'kitti_camera', 'render_frame', 'RenderedFrame',
    'HELDOUT_STREAM', 'make_demo_dataset'
]

PathLike = Union[str, os.PathLike]

#: ``P2`` of KITTI's 2011-09-26 calibration (e.g. training frame 000007).
KITTI_P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728],
                     [0.0, 721.5377, 172.854, 0.2163791],
                     [0.0, 0.0, 1.0, 0.002745884]])
#: KITTI image size (width, height) in pixels for that calibration.
KITTI_IMAGE_SIZE = (1242, 375)
#: Height of the camera above the ground, metres (KITTI setup).
CAMERA_HEIGHT = 1.65
#: KITTI stereo baseline between cameras 0 and 1 (and 2 and 3), metres.
_BASELINE = 0.54

#: Class sampling probability, mean size (l, h, w) and size std, metres.
CLASS_PRIORS: Dict[str, dict] = {
    'Car': dict(p=0.6, size=(3.9, 1.56, 1.6), std=(0.35, 0.1, 0.1)),
    'Pedestrian': dict(p=0.25, size=(0.8, 1.75, 0.6), std=(0.15, 0.1, 0.08)),
    'Cyclist': dict(p=0.15, size=(1.76, 1.73, 0.6), std=(0.15, 0.08, 0.08)),
}


@dataclass(frozen=True)
class SceneLayout:
    """What a frame holds: which classes, how many objects, where.

    The defaults are the general-purpose scenes (three classes, 4-60 m,
    centres up to 10 % of the width outside the image, so that near
    objects are often truncated); :data:`DEMO_LAYOUT` is the demo's.

    Attributes:
        class_probs (tuple[tuple[str, float]]): Class name (a key of
            :data:`CLASS_PRIORS`) and its sampling probability (normalised).
        num_objects (tuple[int, int]): Inclusive range of objects sampled
            per frame (before dropping the ones that overlap or miss the
            image).
        depth_range (tuple[float, float]): Range of the object depth z,
            metres (uniform).
        u_range (tuple[float, float]): Range of the object centre's image
            column as a fraction of the width (uniform; beyond [0, 1] the
            centre lies outside the image).
        aligned_fraction (float): Share of Cars that drive along the road
            (heading +-pi/2 with a 0.15 rad spread, as most of KITTI's);
            the others and all other classes get a uniform heading.
        skyline (bool): Whether to draw the distant buildings at the
            horizon (box-like shapes without depth, which a detector at an
            early stage takes for far cars).
    """
    class_probs: Tuple[Tuple[str, float], ...] = tuple(
        (name, prior['p']) for name, prior in CLASS_PRIORS.items())
    num_objects: Tuple[int, int] = (2, 12)
    depth_range: Tuple[float, float] = (4.0, 60.0)
    u_range: Tuple[float, float] = (-0.1, 1.1)
    aligned_fraction: float = 0.7
    skyline: bool = True

    def __post_init__(self):
        unknown = [c for c, _ in self.class_probs if c not in CLASS_PRIORS]
        if unknown or not self.class_probs or \
                any(p < 0 for _, p in self.class_probs) or \
                sum(p for _, p in self.class_probs) <= 0:
            raise ValueError(
                f'SceneLayout.class_probs must pair classes of '
                f'{sorted(CLASS_PRIORS)} with non-negative probabilities '
                f'(not all 0), got {self.class_probs}')
        lo, hi = self.num_objects
        if not 0 <= lo <= hi:
            raise ValueError(f'SceneLayout.num_objects must be (min, max) '
                             f'with 0 <= min <= max, got {self.num_objects}')
        zlo, zhi = self.depth_range
        if not 0 < zlo < zhi:
            raise ValueError(f'SceneLayout.depth_range must be (near, far) '
                             f'metres with 0 < near < far, got '
                             f'{self.depth_range}')
        if not self.u_range[0] < self.u_range[1]:
            raise ValueError(f'SceneLayout.u_range must be increasing, got '
                             f'{self.u_range}')
        if not 0.0 <= self.aligned_fraction <= 1.0:
            raise ValueError(f'SceneLayout.aligned_fraction must be in '
                             f'[0, 1], got {self.aligned_fraction}')

    def as_dict(self) -> dict:
        """Plain values (for a manifest)."""
        return dict(class_probs=[list(c) for c in self.class_probs],
                    num_objects=list(self.num_objects),
                    depth_range=list(self.depth_range),
                    u_range=list(self.u_range),
                    aligned_fraction=self.aligned_fraction,
                    skyline=self.skyline)


#: The demo's scenes: Cars only (the class KITTI's table reports), 3-10 per
#: frame, 4-30 m (KITTI's moderate level, 2D boxes over 25 px, holds the
#: Cars within about 16 m at the demo's 1/3 scale), centres inside the
#: image, 80 % of the Cars along the road, no skyline (its box-like
#: buildings were the demo detector's main false positives). Chosen with the
#: learning curves in docs/benchmarks.md ("Demo").
DEMO_LAYOUT = SceneLayout(class_probs=(('Car', 1.0), ), num_objects=(3, 10),
                          depth_range=(4.0, 30.0), u_range=(0.0, 1.0),
                          aligned_fraction=0.8, skyline=False)


# Box faces as corner indices (see kitti_converter.box3d_corners_camera):
# local -x, +x, top (-y), bottom (+y), -z, +z, with local outward normals.
_FACES = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 5, 4], [3, 2, 6, 7],
                   [0, 3, 7, 4], [1, 2, 6, 5]])
_FACE_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0],
                          [0, 0, -1], [0, 0, 1]], dtype=np.float64)
_LIGHT = np.array([-0.35, -1.0, -0.45]) / np.linalg.norm([-0.35, -1.0, -0.45])
_AMBIENT = 0.45


@dataclass
class SyntheticCamera:
    """Camera of the synthetic dataset.

    The scene lives in the label frame of the dataset (KITTI: the rectified
    frame of camera 0; Waymo: the front camera's frame), x right, y down,
    z forward, with the ground the plane ``y = ground_y``; the camera's
    axes are those of the label frame (a level camera), so boxes standing
    on the ground are exact yaw-about-y boxes in it.

    Args:
        width (int): Image width, px.
        height (int): Image height, px.
        calib (dict[str, np.ndarray]): The dataset's calibration; KITTI's
            (:func:`kitti_camera`): ``P0``-``P3`` 3x4, ``R0_rect`` 3x3,
            ``Tr_velo_to_cam`` and ``Tr_imu_to_velo`` 3x4, ``R0_rect`` the
            identity.
        projection_key (str): Key of ``calib`` holding the (3, 4)
            projection matrix of the rendered camera, label frame to
            pixels. Defaults to ``'P2'`` (KITTI's left colour camera).
        ground_y (float): y of the ground plane in the label frame,
            metres. Defaults to :data:`CAMERA_HEIGHT` (KITTI).
    """
    width: int
    height: int
    calib: Dict[str, np.ndarray] = field(repr=False)
    projection_key: str = 'P2'
    ground_y: float = CAMERA_HEIGHT

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix of the rendered camera."""
        return self.calib[self.projection_key]

    @property
    def P2(self) -> np.ndarray:
        """The rendered camera's projection matrix under KITTI's name
        (``calib['P2']`` for :func:`kitti_camera`); same as :attr:`P`."""
        return self.P

    def project(self, pts: np.ndarray) -> np.ndarray:
        """Project (..., 3) label-frame points to (..., 2) pixels with
        :attr:`P`."""
        hom = pts @ self.P[:, :3].T + self.P[:, 3]
        return hom[..., :2] / hom[..., 2:3]

    @property
    def center(self) -> np.ndarray:
        """Optical centre of the rendered camera in the label frame."""
        return -np.linalg.solve(self.P[:, :3], self.P[:, 3])


def kitti_camera(scale: float = 1.0) -> SyntheticCamera:
    """KITTI's camera, optionally scaled.

    ``P2`` is KITTI's (:data:`KITTI_P2`); ``P0``, ``P1``, ``P3`` share its
    intrinsics with the nominal KITTI rig offsets (cam 0 at the origin,
    cams 1 and 3 0.54 m to the right of cams 0 and 2); ``R0_rect`` is the
    identity; ``Tr_velo_to_cam`` is the nominal axis permutation of the
    Velodyne (x forward, y left, z up) 0.27 m behind and 0.08 m above
    camera 0; ``Tr_imu_to_velo`` a nominal offset. Scaling multiplies the
    first two rows of every ``P`` and the image size by ``scale``.

    Args:
        scale (float): Image scale factor. Defaults to 1.0.

    Returns:
        SyntheticCamera: The camera.
    """
    if scale <= 0:
        raise ValueError(f'scale must be positive, got {scale}')
    K = KITTI_P2[:, :3]
    fx = K[0, 0]
    p0 = np.concatenate([K, np.zeros((3, 1))], axis=1)
    p1 = p0.copy()
    p1[0, 3] = -fx * _BASELINE
    p3 = KITTI_P2.copy()
    p3[0, 3] -= fx * _BASELINE
    calib = dict(P0=p0, P1=p1, P2=KITTI_P2.copy(), P3=p3)
    for k in ('P0', 'P1', 'P2', 'P3'):
        calib[k][:2] *= scale
    calib['R0_rect'] = np.eye(3)
    calib['Tr_velo_to_cam'] = np.array([[0.0, -1.0, 0.0, 0.0],
                                        [0.0, 0.0, -1.0, -0.08],
                                        [1.0, 0.0, 0.0, -0.27]])
    calib['Tr_imu_to_velo'] = np.array([[1.0, 0.0, 0.0, -0.81],
                                        [0.0, 1.0, 0.0, 0.32],
                                        [0.0, 0.0, 1.0, -0.80]])
    w, h = KITTI_IMAGE_SIZE
    return SyntheticCamera(
        width=int(round(w * scale)), height=int(round(h * scale)), calib=calib)


@dataclass
class RenderedFrame:
    """Output of :func:`render_frame`.

    Attributes:
        image (np.ndarray): (H, W, 3) uint8 RGB image.
        objects (list[dict]): KITTI label objects (keys of
            ``kitti_io.KittiObject``; dimensions h, w, l) in label order.
        id_map (np.ndarray): (H, W) uint8, 0 for background, else 1 + the
            index of the painted object (in sampling order) showing there.
        visible_fraction (list[float]): Per written line (DontCare
            included), the fraction of the object's in-image silhouette
            pixels that remain visible after painting.
        base_colors (list[tuple]): Per written non-DontCare object, its
            random RGB base colour.
        boxes (list[dict]): Every painted object, in sampling order (its
            index + 1 is its value in ``id_map``), whatever its visibility:
            ``name``, ``lhw`` (length, height, width), ``loc`` (bottom
            centre in the label frame), ``ry`` (yaw about the label
            frame's y axis), ``box2d`` (x1, y1, x2, y2: bounds of the
            projected corners' convex hull clipped to ``[0, W] x [0, H]``,
            the rule of mmdet3d's converters' ``post_process_coords``),
            ``truncated`` (share of that hull outside the image) and
            ``visible_pixels`` (its pixels in ``id_map``).
    """
    image: np.ndarray
    objects: List[dict]
    id_map: np.ndarray
    visible_fraction: List[float]
    base_colors: List[Tuple[float, float, float]]
    boxes: List[dict] = field(default_factory=list)


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def _convex_hull(pts: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull of (N, 2) points (monotone chain)."""
    pts = sorted(map(tuple, pts))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) *
                                     (p[1] - out[-2][1]) -
                                     (out[-1][1] - out[-2][1]) *
                                     (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])


def _poly_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _clip_poly(poly: np.ndarray, w: float, h: float) -> np.ndarray:
    """Clip a convex polygon to ``[0, w] x [0, h]`` (Sutherland-Hodgman)."""
    out = [tuple(p) for p in poly]
    for axis, bound, keep_less in ((0, 0.0, False), (0, w, True),
                                   (1, 0.0, False), (1, h, True)):
        if not out:
            break
        src, out = out, []
        for i, cur in enumerate(src):
            prev = src[i - 1]
            cin = cur[axis] <= bound if keep_less else cur[axis] >= bound
            pin = prev[axis] <= bound if keep_less else prev[axis] >= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(tuple(prev[k] + t * (cur[k] - prev[k])
                                 for k in range(2)))
            if cin:
                out.append(cur)
    return np.array(out).reshape(-1, 2)


def _box_corners(loc: np.ndarray, lhw: np.ndarray, ry: float) -> np.ndarray:
    """(8, 3) corners, same order as ``kitti_converter.box3d_corners_camera``.
    """
    from .kitti_converter import box3d_corners_camera
    return box3d_corners_camera(loc[None], lhw[None], np.array([ry]))[0]


def _render_background(rng: np.random.Generator, cam: SyntheticCamera,
                       skyline: bool = True) -> np.ndarray:
    """Sky, distant skyline (optional) and textured ground; (H, W, 3)
    float32."""
    W, H = cam.width, cam.height
    P = cam.P
    fx, fy, cx, cy = P[0, 0], P[1, 1], P[0, 2], P[1, 2]
    t = np.linalg.solve(P[:, :3], P[:, 3])
    img = np.empty((H, W, 3), np.float32)
    v = np.arange(H, dtype=np.float64)
    u = np.arange(W, dtype=np.float64)

    # Sky: vertical gradient, lighter towards the horizon.
    sky_top = rng.uniform([90, 120, 160], [150, 175, 225])
    sky_hor = rng.uniform([180, 185, 190], [225, 230, 235])
    g = np.clip(v / max(cy, 1.0), 0, 1)[:, None]
    img[:] = (sky_top * (1 - g) + sky_hor * g)[:, None, :]

    # Distant skyline at the horizon (infinitely far: no depth information).
    horizon = int(np.floor(cy))
    canvas = Image.fromarray(np.zeros((H, W), np.uint8))
    draw = ImageDraw.Draw(canvas)
    shades = []
    for k in range(int(rng.integers(6, 16)) if skyline else 0):
        x0 = rng.uniform(-0.1, 1.0) * W
        x1 = x0 + rng.uniform(0.04, 0.25) * W
        top = horizon - rng.uniform(0.02, 0.18) * H
        draw.rectangle([x0, top, x1, horizon + 1], fill=k + 1)
        shades.append(rng.uniform(60, 150, size=3))
    sky_ids = np.asarray(canvas)
    mask = sky_ids > 0
    lut = np.array([[0.0, 0.0, 0.0]] + shades, np.float32)
    img[mask] = lut[sky_ids[mask]]

    # Ground: ray/plane intersection for rows below the horizon.
    rows = v > cy + 0.5
    s = (cam.ground_y + t[1]) * fy / (v[rows] - cy)  # (R,)
    # float32 keeps this vectorised pass fast; precision is ample here.
    Z = np.minimum(s - t[2], 2000.0)[:, None].astype(np.float32)
    X = (s[:, None] * (u[None, :] - cx) / fx - t[0]).astype(np.float32)
    dX = (s / fx)[:, None].astype(np.float32)  # metres per pixel across
    dZ = (s * s / ((cam.ground_y + t[1]) * fy))[:, None].astype(
        np.float32)  # metres per pixel along (one row)
    base = rng.uniform(75, 125) + rng.uniform(-8, 8, size=3)
    tex = np.zeros_like(X)
    for _ in range(7):
        lam = rng.uniform(0.25, 6.0)
        theta = rng.uniform(0, np.pi)
        kx, kz = np.cos(theta) / lam, np.sin(theta) / lam
        # Analytic pre-filter: attenuate frequencies above ~1/4 cycle/px.
        f2 = (kx * dX)**2 + (kz * dZ)**2
        amp = np.float32(rng.uniform(3, 10)) * np.exp(-20.0 * f2)
        arg = np.float32(2 * np.pi * kx) * X + (
            np.float32(2 * np.pi * kz) * Z + np.float32(
                rng.uniform(0, 2 * np.pi)))
        tex += amp * np.cos(arg)
    # Dashed lane markings (box-filtered coverage, no aliasing).
    lane_w, dash, period = 0.12, 3.0, 9.0
    phase = rng.uniform(0, period)
    offset = rng.uniform(-1.75, 1.75)

    def on_length(z):
        zz = z + phase
        return np.floor(zz / period) * dash + np.clip(zz % period, 0, dash)

    cov_z = (on_length(Z + dZ / 2) - on_length(Z - dZ / 2)) / dZ
    # Distance to the nearest lane line (lines every 3.5 m), box-filtered.
    xr = np.abs((X - np.float32(offset) + np.float32(1.75)) %
                np.float32(3.5) - np.float32(1.75))
    half = np.float32(lane_w / 2)
    ov = (np.minimum(xr + dX / 2, half) - np.maximum(xr - dX / 2, -half))
    cov = np.clip(ov / dX, 0, 1) * (cov_z * np.float32(0.85))
    lum = tex * (1 - cov) + cov * np.float32(215.0)
    ground = base.astype(np.float32)[None, None, :] * (
        1 - cov[..., None]) + lum[..., None]
    img[rows] = ground
    return img


def _sample_objects(rng: np.random.Generator, cam: SyntheticCamera,
                    layout: SceneLayout,
                    priors: Mapping[str, dict]) -> List[dict]:
    """Sample non-overlapping boxes on the ground (sizes, x, z and yaw
    quantised to 0.01; the bottom at ``cam.ground_y`` exactly)."""
    names = [n for n, _ in layout.class_probs]
    probs = np.array([p for _, p in layout.class_probs], dtype=np.float64)
    probs = probs / probs.sum()
    fx, cx = cam.P[0, 0], cam.P[0, 2]
    objs: List[dict] = []
    n_target = int(rng.integers(layout.num_objects[0],
                                layout.num_objects[1] + 1))
    for _ in range(n_target * 6):
        if len(objs) >= n_target:
            break
        name = names[int(rng.choice(len(names), p=probs))]
        prior = priors[name]
        mean, std = np.array(prior['size']), np.array(prior['std'])
        lhw = np.clip(mean + rng.normal(0, 1, 3) * std, 0.75 * mean,
                      1.25 * mean)
        z = rng.uniform(*layout.depth_range)
        u_c = rng.uniform(*layout.u_range) * cam.width
        x = (u_c - cx) * z / fx
        if name == 'Car' and rng.random() < layout.aligned_fraction:
            ry = rng.choice([-np.pi / 2, np.pi / 2]) + rng.normal(0, 0.15)
        else:
            ry = rng.uniform(-np.pi, np.pi)
        lhw = np.round(lhw, 2)
        loc = np.round(np.array([x, cam.ground_y, z]), 2)
        loc[1] = cam.ground_y  # on the ground (a no-op for KITTI's 1.65)
        ry = round(_wrap(ry), 2)
        radius = 0.5 * np.hypot(lhw[0], lhw[2])
        if any(
                np.hypot(loc[0] - o['loc'][0], loc[2] - o['loc'][2]) <
                radius + o['radius'] + 0.3 for o in objs):
            continue
        objs.append(dict(name=name, lhw=lhw, loc=loc, ry=ry, radius=radius))
    return objs


def render_frame(rng: np.random.Generator,
                 cam: SyntheticCamera,
                 layout: Optional[SceneLayout] = None,
                 priors: Optional[Mapping[str, dict]] = None
                 ) -> RenderedFrame:
    """Render one frame and its labels.

    Args:
        rng (np.random.Generator): Source of all randomness of the frame.
        cam (SyntheticCamera): Camera (:func:`kitti_camera`, or
            :func:`ddml.data_tools.synthetic_waymo.waymo_camera`).
        layout (SceneLayout, optional): Classes, object count and
            placement. Defaults to ``SceneLayout()``.
        priors (Mapping[str, dict], optional): Size prior per class
            (``size`` (l, h, w) and ``std``, as in :data:`CLASS_PRIORS`),
            covering the layout's classes. Defaults to
            :data:`CLASS_PRIORS` (KITTI's).

    Returns:
        RenderedFrame: Image, KITTI label objects, the object id map and
        every painted box.
    """
    W, H = cam.width, cam.height
    layout = layout if layout is not None else SceneLayout()
    priors = CLASS_PRIORS if priors is None else priors
    missing = [c for c, _ in layout.class_probs if c not in priors]
    if missing:
        raise ValueError(f'priors lack the classes {missing} of the layout')
    img = _render_background(rng, cam, layout.skyline)
    objs = _sample_objects(rng, cam, layout, priors)
    cam_c = cam.center

    # Geometry, silhouettes; drop objects whose silhouette misses the image.
    drawn = []
    for o in objs:
        corners = _box_corners(o['loc'], o['lhw'], o['ry'])
        uv = cam.project(corners)
        hull = _convex_hull(uv)
        clipped = _clip_poly(hull, W, H)
        if len(clipped) < 3 or _poly_area(clipped) <= 0:
            continue
        o.update(
            corners=corners,
            uv=uv,
            hull=hull,
            clipped=clipped,
            trunc=1.0 - _poly_area(clipped) / _poly_area(hull),
            color=rng.uniform(25, 235, size=3),
            dist=float(np.hypot(o['loc'][0], o['loc'][2])))
        drawn.append(o)

    # Contact shadows on the ground first (never over any object).
    shadow = Image.new('L', (W, H), 0)
    sdraw = ImageDraw.Draw(shadow)
    for o in drawn:
        bottom = o['corners'][[3, 2, 6, 7]]
        ctr = bottom.mean(0)
        foot = ctr + (bottom - ctr) * np.array([1.15, 1.0, 1.15])
        sdraw.polygon([tuple(p) for p in cam.project(foot)], fill=255)
    smask = np.asarray(shadow, np.float32)[..., None] / 255.0
    img = img * (1 - 0.45 * smask)
    canvas = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    ids = Image.new('L', (W, H), 0)
    idraw = ImageDraw.Draw(ids)

    # Painter's order: far to near.
    order = sorted(range(len(drawn)), key=lambda i: -drawn[i]['dist'])
    for i in order:
        o = drawn[i]
        c, s = np.cos(o['ry']), np.sin(o['ry'])
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        normals = _FACE_NORMALS @ rot.T
        hull_pts = [tuple(p) for p in o['hull']]
        shade_min = _AMBIENT
        faces = []
        for f, n in zip(_FACES, normals, strict=True):
            fc = o['corners'][f].mean(0)
            if np.dot(n, cam_c - fc) <= 0:
                continue
            shade = _AMBIENT + (1 - _AMBIENT) * max(0.0, float(n @ _LIGHT))
            faces.append((f, shade))
        col = o['color']
        # Fill the silhouette first so face seams never show background.
        draw.polygon(hull_pts, fill=tuple(int(v) for v in col * shade_min))
        for f, shade in faces:
            draw.polygon([tuple(p) for p in o['uv'][f]],
                         fill=tuple(int(v) for v in col * shade))
        idraw.polygon(hull_pts, fill=i + 1)

    id_map = np.asarray(ids).copy()
    counts = np.bincount(id_map.ravel(), minlength=len(drawn) + 1)

    objects, fractions, colors = [], [], []
    for i, o in enumerate(drawn):
        # Silhouette pixels when painted alone (same rasteriser, cropped).
        x0 = int(max(0, np.floor(o['hull'][:, 0].min())))
        y0 = int(max(0, np.floor(o['hull'][:, 1].min())))
        x1 = int(min(W, np.ceil(o['hull'][:, 0].max()) + 1))
        y1 = int(min(H, np.ceil(o['hull'][:, 1].max()) + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        alone = Image.new('L', (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(alone).polygon(
            [(p[0] - x0, p[1] - y0) for p in o['hull']], fill=1)
        own = int(np.asarray(alone).sum())
        vis = int(counts[i + 1])
        if own == 0 or vis == 0:
            continue
        frac = min(1.0, vis / own)
        if frac < 0.15:
            ys, xs = np.nonzero(id_map == i + 1)
            objects.append(
                dict(
                    name='DontCare',
                    truncated=-1,
                    occluded=-1,
                    alpha=-10,
                    bbox=[
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max()),
                        float(ys.max())
                    ],
                    dimensions=[-1, -1, -1],
                    location=[-1000, -1000, -1000],
                    rotation_y=-10))
            fractions.append(frac)
            continue
        occ = 0 if frac >= 0.95 else (1 if frac >= 0.6 else 2)
        uv = o['uv']
        bbox = [
            float(np.clip(uv[:, 0].min(), 0, W - 1)),
            float(np.clip(uv[:, 1].min(), 0, H - 1)),
            float(np.clip(uv[:, 0].max(), 0, W - 1)),
            float(np.clip(uv[:, 1].max(), 0, H - 1))
        ]
        loc = o['loc']
        lhw = o['lhw']
        objects.append(
            dict(
                name=o['name'],
                truncated=float(np.clip(o['trunc'], 0, 1)),
                occluded=occ,
                alpha=_wrap(o['ry'] - np.arctan2(loc[0], loc[2])),
                bbox=bbox,
                dimensions=[float(lhw[1]),
                            float(lhw[2]),
                            float(lhw[0])],
                location=[float(v) for v in loc],
                rotation_y=float(o['ry'])))
        fractions.append(frac)
        colors.append(tuple(float(v) for v in o['color']))
    boxes = [
        dict(
            name=o['name'],
            lhw=o['lhw'].copy(),
            loc=o['loc'].copy(),
            ry=o['ry'],
            box2d=[
                float(o['clipped'][:, 0].min()),
                float(o['clipped'][:, 1].min()),
                float(o['clipped'][:, 0].max()),
                float(o['clipped'][:, 1].max())
            ],
            truncated=float(np.clip(o['trunc'], 0, 1)),
            visible_pixels=int(counts[i + 1])) for i, o in enumerate(drawn)
    ]
    return RenderedFrame(
        image=np.asarray(canvas),
        objects=objects,
        id_map=id_map,
        visible_fraction=fractions,
        base_colors=colors,
        boxes=boxes)


#: ``SeedSequence`` spawn key of the held-out frames (train/val: none).
HELDOUT_STREAM = (1, )


def _frame_rng(seed: int, idx: int,
               stream: Tuple[int, ...] = ()) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([seed, idx], spawn_key=stream))


def _encode_png(image: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='PNG', compress_level=1)
    return buf.getvalue()


def _write_frame(
        job: Tuple[str, int, int, float, SceneLayout, str]) -> int:
    out_dir, seed, idx, scale, layout, folder = job
    out = Path(out_dir) / folder
    cam = kitti_camera(scale)
    stream = HELDOUT_STREAM if folder == 'testing' else ()
    frame = render_frame(_frame_rng(seed, idx, stream), cam, layout)
    name = f'{idx:06d}'
    atomic_write_bytes(out / 'image_2' / f'{name}.png',
                       _encode_png(frame.image))
    write_label_file(out / 'label_2' / f'{name}.txt', frame.objects)
    atomic_write_bytes(out / 'calib' / f'{name}.txt',
                       format_calib(cam.calib).encode('ascii'))
    return idx


def make_demo_dataset(out_dir: PathLike,
                      num_train: int,
                      num_val: int,
                      seed: int = 0,
                      scale: float = 1.0,
                      workers: Optional[int] = None,
                      progress: bool = True,
                      convert: bool = True,
                      extra_tag: str = 'kitti',
                      layout: Optional[SceneLayout] = None,
                      num_test: int = 0) -> Dict[str, Path]:
    """Render a KITTI-format dataset and (optionally) its mmdet3d infos.

    Writes ``training/{image_2,label_2,calib}/<id>.{png,txt}`` for frames
    ``0 .. num_train + num_val - 1`` and ``ImageSets/{train,val,
    trainval}.txt`` (train = the first ``num_train`` ids); with
    ``num_test``, a labelled held-out split in KITTI's ``testing/`` folder
    (``testing/{image_2,label_2,calib}``, ids ``0 .. num_test - 1``,
    ``ImageSets/test.txt``) rendered from its own seed stream
    (:data:`HELDOUT_STREAM`); then, when ``convert``,
    ``{extra_tag}_infos_{train,val,trainval[,test]}.pkl`` via
    :func:`ddml.data_tools.kitti_converter.create_kitti_infos`.

    Args:
        out_dir (str | PathLike): Dataset root to create.
        num_train (int): Number of training frames.
        num_val (int): Number of validation frames.
        seed (int): Random seed; the same seed gives byte-identical files.
            Defaults to 0.
        scale (float): Image scale (1.0 = KITTI's 1242x375). Defaults to 1.
        workers (int, optional): Worker processes; defaults to
            ``min(2, os.cpu_count())``. Output does not depend on it.
        progress (bool): Show a tqdm progress bar. Defaults to True.
        convert (bool): Also write the info files. Defaults to True.
        extra_tag (str): Info file prefix. Defaults to 'kitti'.
        layout (SceneLayout, optional): What the frames hold. Defaults to
            ``SceneLayout()`` (three classes); the demo uses
            :data:`DEMO_LAYOUT`.
        num_test (int): Frames of the labelled held-out ``test`` split.
            Defaults to 0 (none; an existing ``testing/`` folder is then
            refused, as the converter would read it).

    Returns:
        dict[str, Path]: Info split -> file (empty when not converting).
    """
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError('num_train and num_val must be >= 0 and not both 0,'
                         f' got {num_train} and {num_val}')
    if num_test < 0:
        raise ValueError(f'num_test must be >= 0, got {num_test}')
    root = Path(out_dir)
    folders = ['training'] + (['testing'] if num_test else [])
    for folder in folders:
        for sub in ('image_2', 'label_2', 'calib'):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
    if not num_test and (root / 'testing').is_dir():
        raise FileExistsError(
            f'{root / "testing"} exists but num_test is 0: its infos would '
            'describe frames this rendering did not write; remove that '
            'folder or pass num_test (--num-test)')
    (root / 'ImageSets').mkdir(parents=True, exist_ok=True)
    n = num_train + num_val
    layout = layout if layout is not None else SceneLayout()
    jobs = [(str(root), int(seed), i, float(scale), layout, 'training')
            for i in range(n)]
    jobs += [(str(root), int(seed), i, float(scale), layout, 'testing')
             for i in range(num_test)]
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc='render', unit='frame')
    if workers > 1 and len(jobs) > 1:
        with get_context('fork').Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_frame, jobs, chunksize=4):
                if bar is not None:
                    bar.update(1)
    else:
        for job in jobs:
            _write_frame(job)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    splits = dict(
        train=range(num_train),
        val=range(num_train, n),
        trainval=range(n))
    if num_test:
        splits['test'] = range(num_test)
    for split, ids in splits.items():
        atomic_write_bytes(root / 'ImageSets' / f'{split}.txt',
                           ''.join(f'{i:06d}\n' for i in ids).encode())
    if not convert:
        return {}
    from .kitti_converter import create_kitti_infos
    return create_kitti_infos(
        root, root, extra_tag=extra_tag, progress=progress)
