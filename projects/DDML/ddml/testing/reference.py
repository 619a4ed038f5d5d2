"""Run the authors' releases next to ddml, for parity tests.

The two public releases that ddml reproduces live, unmodified and
MIT-licensed, outside the repository in ``<repo>/../shared/reference`` (see
its README); nothing of them is copied here. This module finds them and
loads their functions so that a test can run the release and ddml on the
same inputs:

* :func:`reference_root` / :func:`release_root`: where they are
  (``DDML_REFERENCE_ROOT`` overrides the folder, e.g. when ddml is not
  installed from its clone);
  :func:`require_release` skips a pytest test, with the reason, when a
  release is absent, so CI on a machine with ``../shared`` runs the tests
  and a bare clone skips them;
* :func:`import_release_module`: import one of a release's modules (e.g.
  ``lib.losses.focal_loss``) with the release's root on ``sys.path``. Both
  releases name their package ``lib``; each import is isolated (the
  release's modules never stay in ``sys.modules``), so the two releases
  and ddml do not see each other's ``lib``;
* :func:`load_definitions`: compile chosen top-level functions and classes
  of a release file into a fresh namespace, after running those of the
  file's top-level imports that work here. For files with an import that
  fails here, e.g. ``lib/datasets/kitti/kitti_dataset.py`` (its KITTI
  evaluation compiles numba CUDA kernels at import).

Both return the release's own code objects: a test calls them as the
release does.

For the data side, :func:`write_kitti_root` writes KITTI frames (label,
calibration, a grey image; :func:`parity_scene` is the tests' scene) that
both read: :func:`release_dataset` runs the release's own
``KITTI_Dataset`` on them (MonoDLE's targets),
:func:`release_object_depth_targets` DDML's ``make_obj_depth.py``, dataset
and loss resize (its object depth maps), and :func:`mmdet3d_kitti_dataset`
mmdet3d's dataset and configs/monodle's pipeline on ddml's infos of them.
"""
import ast
import contextlib
import importlib
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'REFERENCE_ENV', 'RELEASES', 'RELEASE_COMMITS', 'ReferenceNotFound',
    'reference_root', 'release_root', 'require_release', 'release_commit',
    'import_release_module', 'load_definitions', 'DDML_CLASSES',
    'RELEASE_CLASSES', 'CLASS_SWAP', 'RELEASE_RESOLUTION',
    'RELEASE_DOWNSAMPLE', 'RELEASE_FEAT_HW', 'GROUND_Y', 'kitti_label',
    'kitti_dont_care', 'parity_scene', 'kitti_calib', 'write_kitti_root',
    'link_release_layout', 'release_dataset', 'release_targets',
    'mmdet3d_kitti_dataset', 'parity_monodle_head', 'monodle_head_targets',
    'release_object_depth_targets'
]

#: Environment variable that overrides the reference folder.
REFERENCE_ENV = 'DDML_REFERENCE_ROOT'

#: Short name of each release -> its folder under the reference root.
RELEASES: Dict[str, str] = {
    'monodle': 'monodle',  # xinzhuma/monodle
    'ddml': 'DDML-M3DOD',  # mingyuShin/DDML-M3DOD
}

#: The commit of each release in the reference folder (its README).
RELEASE_COMMITS: Dict[str, str] = {
    'monodle': 'e426aa65fdc7ceedcaab0d637acf3d3425d0736c',
    'ddml': 'c378da38b710c56e4777da4ea079f8345ea0b60f',
}

#: ``<repo>``: this file is ``<repo>/projects/DDML/ddml/testing/``.
_REPO_ROOT = Path(__file__).resolve().parents[4]

#: The releases' top-level package (both call it ``lib``).
_RELEASE_PACKAGE = 'lib'


class ReferenceNotFound(FileNotFoundError):
    """A release's source tree is not where the tests look for it."""


def reference_root() -> Path:
    """The folder holding the releases.

    Returns:
        Path: ``$DDML_REFERENCE_ROOT`` when set, else
        ``<repo>/../shared/reference`` (it need not exist).
    """
    override = os.environ.get(REFERENCE_ENV)
    if override:
        return Path(override).expanduser()
    return _REPO_ROOT.parent / 'shared' / 'reference'


def release_root(release: str, root: Optional[os.PathLike] = None) -> Path:
    """The source tree of one release.

    Args:
        release (str): ``'monodle'`` or ``'ddml'`` (a key of
            :data:`RELEASES`).
        root (PathLike, optional): The release's tree itself, overriding
            the reference folder (e.g. a checkout named by an environment
            variable). Defaults to ``reference_root() / RELEASES[release]``.

    Returns:
        Path: The tree (it holds ``lib/``).

    Raises:
        ReferenceNotFound: When the tree or its ``lib/`` is absent.
    """
    if release not in RELEASES:
        raise KeyError(f'unknown release {release!r}; one of '
                       f'{sorted(RELEASES)}')
    path = Path(root) if root is not None else \
        reference_root() / RELEASES[release]
    if not (path / _RELEASE_PACKAGE).is_dir():
        raise ReferenceNotFound(
            f'{path} not found (no {_RELEASE_PACKAGE}/ in it): the parity '
            f'tests read the release {RELEASES[release]} from '
            f'{reference_root()} (set {REFERENCE_ENV} to the folder that '
            'holds monodle/ and DDML-M3DOD/)')
    return path


def require_release(release: str,
                    root: Optional[os.PathLike] = None) -> Path:
    """:func:`release_root`, or skip the calling pytest test.

    Args:
        release (str): See :func:`release_root`.
        root (PathLike, optional): See :func:`release_root`.

    Returns:
        Path: The release's tree.
    """
    try:
        return release_root(release, root)
    except ReferenceNotFound as err:
        import pytest
        pytest.skip(f'release {RELEASES[release]} not available: {err}')


def release_commit(release: str, root: Optional[os.PathLike] = None) -> str:
    """The commit of a release's tree.

    Args:
        release (str): See :func:`release_root`.
        root (PathLike, optional): A git checkout of the release; its
            ``HEAD`` is returned. Defaults to the reference folder, whose
            commit is :data:`RELEASE_COMMITS` (it is not a checkout).

    Returns:
        str: The commit, or ``'unknown'``.
    """
    if root is None:
        return RELEASE_COMMITS[release]
    out = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'],
                         capture_output=True, text=True)
    return out.stdout.strip() or 'unknown (not a git checkout)'


def _is_release_module(name: str) -> bool:
    return name == _RELEASE_PACKAGE or name.startswith(_RELEASE_PACKAGE +
                                                       '.')


def _comes_from(module: ModuleType, tree: Path) -> bool:
    """Whether a module was loaded from a file under ``tree``."""
    origin = getattr(module, '__file__', None)
    if not isinstance(origin, str):
        return False
    return Path(origin).resolve().is_relative_to(tree)


@contextlib.contextmanager
def _release_imports(tree: Path) -> Iterator[None]:
    """Import from ``tree`` without leaving anything behind.

    Inside, ``tree`` is first on ``sys.path`` and no ``lib`` package of
    anyone else is in ``sys.modules``; on exit every module imported from
    ``tree`` leaves ``sys.modules`` (the module objects stay alive through
    the references the caller holds) and what was there is restored.
    """
    tree = tree.resolve()
    before = set(sys.modules)
    saved = {k: sys.modules.pop(k) for k in list(sys.modules)
             if _is_release_module(k)}
    sys.path.insert(0, str(tree))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(tree))
        for name in list(sys.modules):
            if _is_release_module(name) or (
                    name not in before
                    and _comes_from(sys.modules[name], tree)):
                del sys.modules[name]
        sys.modules.update(saved)
        importlib.invalidate_caches()


def import_release_module(release: str,
                          module: str,
                          root: Optional[os.PathLike] = None) -> ModuleType:
    """Import one module of a release, isolated from everything else.

    Args:
        release (str): See :func:`release_root`.
        module (str): Dotted name inside the release, e.g.
            ``'lib.helpers.decode_helper'`` or ``'make_obj_depth'``.
        root (PathLike, optional): See :func:`release_root`.

    Returns:
        ModuleType: The module; its functions see the release's own
        imports.

    Raises:
        ReferenceNotFound: When the release is absent.
        ImportError: When one of the module's imports is not installed.
    """
    tree = release_root(release, root)
    with _release_imports(tree):
        return importlib.import_module(module)


def load_definitions(release: str,
                     path: str,
                     names: Sequence[str],
                     namespace: Optional[dict] = None,
                     root: Optional[os.PathLike] = None) -> SimpleNamespace:
    """Compile chosen top-level definitions of a release file.

    The file's top-level ``import`` statements run first, one by one, in
    the release's isolated import context; those that fail (a package not
    installed here, or one that needs a GPU) are skipped, so the
    definitions that need them fail only when called. Then the top-level
    functions, classes and assignments named in ``names`` are compiled
    from the file (with its file name, so tracebacks point into the
    release) into the same namespace.

    Args:
        release (str): See :func:`release_root`.
        path (str): File inside the release, e.g.
            ``'lib/datasets/kitti/kitti_dataset.py'``.
        names (Sequence[str]): Top-level names to define.
        namespace (dict, optional): Names to provide beforehand (they win
            over the file's imports). Defaults to none.
        root (PathLike, optional): See :func:`release_root`.

    Returns:
        SimpleNamespace: Every name of the namespace (the definitions, the
        imports that worked and ``namespace``) as attributes;
        ``_skipped_imports`` lists the import lines that failed.

    Raises:
        ReferenceNotFound: When the release is absent.
        LookupError: When a name is not defined at the file's top level.
    """
    tree = release_root(release, root)
    file = tree / path
    source = file.read_text()
    module = ast.parse(source, filename=str(file))
    scope: dict = {'__name__': f'ddml_reference_{release}',
                   '__file__': str(file)}
    skipped = []
    with _release_imports(tree):
        for node in module.body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            code = compile(
                ast.Module(body=[node], type_ignores=[]), str(file), 'exec')
            try:
                exec(code, scope)
            except Exception:  # noqa: BLE001 (ImportError, or no GPU)
                skipped.append(ast.get_source_segment(source, node))
    scope.update(namespace or {})
    wanted = set(names)
    chosen = []
    for node in module.body:
        if isinstance(node,
                      (ast.FunctionDef, ast.ClassDef)) and node.name in wanted:
            chosen.append(node)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in wanted
                for t in node.targets):
            chosen.append(node)
    found = {getattr(n, 'name', None) for n in chosen} | {
        t.id for n in chosen if isinstance(n, ast.Assign)
        for t in n.targets if isinstance(t, ast.Name)}
    missing = wanted - found
    if missing:
        raise LookupError(f'{sorted(missing)} not defined at the top level '
                          f'of {file}')
    exec(compile(ast.Module(body=chosen, type_ignores=[]), str(file), 'exec'),
         scope)
    scope['_skipped_imports'] = skipped
    return SimpleNamespace(**{k: v for k, v in scope.items()
                              if not k.startswith('__')})


# ----------------------------------------------------------------------
# KITTI frames that both sides read
# ----------------------------------------------------------------------
#: mmdet3d's KITTI classes in its order (ddml's labels, heatmap channels).
DDML_CLASSES: Tuple[str, ...] = ('Pedestrian', 'Cyclist', 'Car')
#: The releases' class order (``cls2id`` of ``kitti_dataset.py``).
RELEASE_CLASSES: Tuple[str, ...] = ('Pedestrian', 'Car', 'Cyclist')
#: Class ``i`` of one order is class ``CLASS_SWAP[i]`` of the other (Car
#: and Cyclist swap places; the permutation is its own inverse).
CLASS_SWAP: List[int] = [RELEASE_CLASSES.index(c) for c in DDML_CLASSES]
#: The releases' network input (W, H), stride and feature map (H, W).
RELEASE_RESOLUTION: Tuple[int, int] = (1280, 384)
RELEASE_DOWNSAMPLE: int = 4
RELEASE_FEAT_HW: Tuple[int, int] = (RELEASE_RESOLUTION[1] // 4,
                                    RELEASE_RESOLUTION[0] // 4)
#: Camera height above the ground (KITTI), metres: a label's ``y``.
GROUND_Y: float = 1.65


def kitti_label(name: str,
                location: Sequence[float],
                lhw: Sequence[float],
                rotation_y: float,
                P2: Optional[np.ndarray] = None,
                image_size: Tuple[int, int] = (1242, 375),
                truncated: float = 0.,
                occluded: int = 0,
                bbox: Optional[Sequence[float]] = None) -> dict:
    """One KITTI label object (``kitti_io``'s keys; dimensions h, w, l).

    Args:
        name (str): Class name.
        location (Sequence[float]): Bottom centre ``(x, y, z)``, camera
            coordinates, metres.
        lhw (Sequence[float]): Size ``(l, h, w)``, metres.
        rotation_y (float): Yaw, radians.
        P2 (np.ndarray, optional): Camera matrix (3, 4) for the default 2D
            box. Defaults to KITTI's (``synthetic_kitti.KITTI_P2``).
        image_size (tuple[int, int]): Image (W, H). Defaults to KITTI's.
        truncated (float): Label truncation. Defaults to 0.
        occluded (int): Label occlusion level. Defaults to 0.
        bbox (Sequence[float], optional): The annotated 2D box. Defaults to
            the projected corners clipped to ``[0, W-1] x [0, H-1]`` (as
            KITTI's annotated boxes are).

    Returns:
        dict: The object; ``alpha = rotation_y - atan2(x, z)`` wrapped to
        ``[-pi, pi)``.
    """
    from ..data_tools.kitti_converter import box3d_corners_camera
    from ..data_tools.synthetic_kitti import KITTI_P2
    P2 = np.asarray(KITTI_P2 if P2 is None else P2, np.float64)
    x, _, z = location
    alpha = rotation_y - math.atan2(x, z)
    alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
    if bbox is None:
        corners = box3d_corners_camera(
            np.array([location], np.float64), np.array([lhw], np.float64),
            np.array([rotation_y]))[0]
        hom = corners @ P2[:, :3].T + P2[:, 3]
        uv = hom[:, :2] / hom[:, 2:]
        width, height = image_size
        lo = np.clip(uv.min(0), 0, [width - 1, height - 1])
        hi = np.clip(uv.max(0), 0, [width - 1, height - 1])
        bbox = [lo[0], lo[1], hi[0], hi[1]]
    return dict(name=name, truncated=truncated, occluded=occluded,
                alpha=alpha, bbox=[float(v) for v in bbox],
                dimensions=[lhw[1], lhw[2], lhw[0]],
                location=[float(v) for v in location],
                rotation_y=rotation_y)


def kitti_dont_care(bbox: Sequence[float]) -> dict:
    """A ``DontCare`` label object as KITTI writes it."""
    return dict(name='DontCare', truncated=-1, occluded=-1, alpha=-10,
                bbox=[float(v) for v in bbox], dimensions=[-1, -1, -1],
                location=[-1000, -1000, -1000], rotation_y=-10)


def parity_scene(P2: Optional[np.ndarray] = None) -> List[dict]:
    """The label objects of the parity tests' KITTI frame.

    Two Cars, a Pedestrian, a Cyclist and a Car at 8-38 m, all of known
    KITTI difficulty with their projected centres inside the image; and
    objects both sides leave out: a Van (not one of the three classes), a
    Car at 70 m (beyond 65 m, and too small for a difficulty) and a
    ``DontCare`` region.

    Args:
        P2 (np.ndarray, optional): Camera of the annotated 2D boxes.
            Defaults to KITTI's.

    Returns:
        list[dict]: Label objects for :func:`write_kitti_root`.
    """
    y = GROUND_Y
    return [
        kitti_label('Car', (-3., y, 10.), (3.9, 1.56, 1.6), 1.5, P2),
        kitti_label('Car', (4., y, 25.), (4.2, 1.5, 1.7), -1.2, P2),
        kitti_label('Pedestrian', (2., y, 8.), (0.8, 1.75, 0.6), 0.3, P2),
        kitti_label('Cyclist', (-5., y, 15.), (1.76, 1.73, 0.6), 2.8, P2),
        kitti_label('Car', (1., y, 38.), (3.9, 1.5, 1.6), 0.1, P2),
        kitti_label('Van', (6., y, 20.), (5., 2., 1.9), 0.4, P2),
        kitti_label('Car', (0.5, y, 70.), (3.9, 1.5, 1.6), 0.2, P2),
        kitti_dont_care((700., 170., 720., 180.)),
    ]


def kitti_calib(P2: np.ndarray) -> Dict[str, np.ndarray]:
    """A KITTI calibration around ``P2`` (no rectification; the LiDAR
    frame is the camera's rotated to x forward, z up)."""
    P2 = np.asarray(P2, np.float64)
    velo = np.array([[0., -1., 0., 0.], [0., 0., -1., 0.], [1., 0., 0., 0.]])
    return dict(P0=P2, P1=P2, P2=P2, P3=P2, R0_rect=np.eye(3),
                Tr_velo_to_cam=velo, Tr_imu_to_velo=np.eye(4)[:3])


def write_kitti_root(root: os.PathLike,
                     frames: Sequence[Sequence[dict]],
                     P2: Optional[np.ndarray] = None,
                     image_size: Tuple[int, int] = (1242, 375),
                     convert: bool = True) -> Path:
    """A KITTI root of labelled frames that both sides read.

    Writes ``training/{image_2,label_2,calib}/<id>`` for frames ``0..n-1``
    (grey images, labels at full precision),
    ``ImageSets/{train,val,trainval}.txt`` (every frame in each), the link
    ``object -> .`` (MonoDLE's release reads ``<root>/object/training``,
    DDML's ``<root>/training``) and, with ``convert``, ddml's infos
    ``kitti_infos_*.pkl``.

    Args:
        root (PathLike): Folder to create.
        frames (Sequence[Sequence[dict]]): Label objects of every frame
            (:func:`kitti_label`, :func:`kitti_dont_care`).
        P2 (np.ndarray, optional): Camera matrix of every frame, (3, 4).
            Defaults to KITTI's.
        image_size (tuple[int, int]): Image (W, H). Defaults to KITTI's.
        convert (bool): Write ddml's infos. Defaults to True.

    Returns:
        Path: ``root``.
    """
    from PIL import Image

    from ..data_tools import create_kitti_infos
    from ..data_tools.kitti_io import format_calib, write_label_file
    from ..data_tools.synthetic_kitti import KITTI_P2
    root = Path(root)
    P2 = KITTI_P2 if P2 is None else P2
    for sub in ('image_2', 'label_2', 'calib'):
        (root / 'training' / sub).mkdir(parents=True, exist_ok=True)
    image = Image.new('RGB', tuple(image_size), (128, 128, 128))
    for idx, objects in enumerate(frames):
        name = f'{idx:06d}'
        image.save(root / 'training' / 'image_2' / f'{name}.png')
        write_label_file(root / 'training' / 'label_2' / f'{name}.txt',
                         list(objects), decimals=None)
        (root / 'training' / 'calib' / f'{name}.txt').write_text(
            format_calib(kitti_calib(P2)))
    link_release_layout(root, [f'{i:06d}' for i in range(len(frames))])
    if convert:
        create_kitti_infos(root, progress=False)
    return root


def link_release_layout(root: os.PathLike, ids: Sequence[str]) -> None:
    """Split files listing ``ids`` and MonoDLE's ``object/`` level.

    Args:
        root (PathLike): A KITTI root (``training/``).
        ids (Sequence[str]): Frame names (``'000007'``) of every split.
    """
    root = Path(root)
    (root / 'ImageSets').mkdir(exist_ok=True)
    text = ''.join(f'{i}\n' for i in ids)
    for split in ('train', 'val', 'trainval'):
        (root / 'ImageSets' / f'{split}.txt').write_text(text)
    if not (root / 'object').exists():
        os.symlink('.', root / 'object')


def release_dataset(root: os.PathLike, release: str = 'monodle', **cfg):
    """The release's own ``KITTI_Dataset`` on ``root``, split ``val``.

    Args:
        root (PathLike): A root of :func:`write_kitti_root`.
        release (str): ``'monodle'`` or ``'ddml'``.
        **cfg: Dataset options of the release's yaml. Defaults: the three
            classes, ``bbox2d_type='proj'``, ``meanshape=False``, no flip
            and no crop (split ``val`` has none anyway) and, for DDML's,
            ``obj_depth=False``.

    Returns:
        The release's dataset; ``dataset[i]`` is ``(image, targets,
        info)`` as its training loop gets them (numpy).

    Raises:
        ReferenceNotFound: When the release is absent.
    """
    ns = load_definitions(release, 'lib/datasets/kitti/kitti_dataset.py',
                          ['KITTI_Dataset'])
    options = dict(writelist=list(RELEASE_CLASSES), bbox2d_type='proj',
                   meanshape=False, random_flip=0., random_crop=0.)
    if release == 'monodle':
        options['root_dir'] = str(root)
    else:
        options.update(dataroot=str(root), obj_depth=False)
    options.update(cfg)
    return ns.KITTI_Dataset('val', options)


def release_targets(dataset, item: int = 0) -> Dict[str, np.ndarray]:
    """The release's training targets of one frame (numpy; per-object
    arrays have one row per label line, ``mask_2d`` marks the kept ones).
    """
    _, targets, _ = dataset[item]
    return targets


def mmdet3d_kitti_dataset(root: os.PathLike,
                          classes: Sequence[str] = DDML_CLASSES,
                          split: str = 'val',
                          release_fields: bool = False):
    """mmdet3d's ``KittiDataset`` on ddml's infos of ``root``, with
    configs/monodle's training pipeline less its random steps (flip,
    shift/scale): ``AffineResize`` to 1280x384, stride 4.

    Args:
        root (PathLike): A root with ``kitti_infos_<split>.pkl``.
        classes (Sequence[str]): The dataset's classes. Defaults to
            mmdet3d's three.
        split (str): Info split. Defaults to ``'val'``.
        release_fields (bool): Also carry each object's KITTI difficulty
            and annotated 2D box to ``gt_instances_3d.difficulty`` and
            ``gt_instances.bboxes_annotated`` with ddml's transforms (what
            the release's target rules read). Defaults to False.

    Returns:
        The dataset; ``dataset[i]['data_samples']`` is the packed sample.
    """
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    keys = ['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
            'gt_labels_3d', 'centers_2d', 'depths']
    pipeline = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
             with_attr_label=False, with_bbox_3d=True, with_label_3d=True,
             with_bbox_depth=True),
        dict(type='AffineResize', img_scale=RELEASE_RESOLUTION,
             down_ratio=RELEASE_DOWNSAMPLE),
        dict(type='Pack3DDetInputs', keys=keys),
    ]
    if release_fields:
        pipeline[2:] = [
            dict(type='LoadObjectDifficulty'),
            dict(type='LoadAnnotatedBoxes2D'),
            dict(type='AffineResizeKeepInstanceKeys',
                 img_scale=RELEASE_RESOLUTION,
                 down_ratio=RELEASE_DOWNSAMPLE),
            dict(type='Pack3DDetInputsWithDifficulty',
                 keys=keys + ['gt_difficulty', 'gt_bboxes_annotated']),
        ]
    return DATASETS.build(
        dict(type='KittiDataset', data_root=str(root),
             ann_file=f'kitti_infos_{split}.pkl',
             data_prefix=dict(img='training/image_2'),
             modality=dict(use_lidar=False, use_camera=True),
             load_type='fov_image_based', box_type_3d='Camera',
             metainfo=dict(classes=list(classes)), pipeline=pipeline,
             test_mode=False, filter_empty_gt=False))


def parity_monodle_head(mean_sizes: Optional[Sequence] = None, **kwargs):
    """ddml's ``MonoDLEHead`` for KITTI's 3 classes, with tiny branches.

    Args:
        mean_sizes (Sequence, optional): ``(l, h, w)`` per class. Defaults
            to zeros: absolute sizes, the release's ``meanshape: False``.
        **kwargs: Other head options.

    Returns:
        MonoDLEHead: The head (random weights).
    """
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    if mean_sizes is None:
        mean_sizes = ((0., 0., 0.), ) * 3
    cfg = dict(type='MonoDLEHead', num_classes=3, in_channels=2,
               feat_channels=2,
               bbox_coder=dict(type='MonoDLECoder', mean_sizes=mean_sizes))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def monodle_head_targets(head, samples: Sequence) -> Dict[str, Any]:
    """``MonoDLEHead.get_targets`` of packed samples on the releases'
    feature map (96 x 320 for a 1280x384 input)."""
    samples = list(samples)
    metas = [s.metainfo for s in samples]
    stride = head._stride(metas, RELEASE_FEAT_HW)
    return head.get_targets([s.gt_instances_3d for s in samples],
                            [s.gt_instances for s in samples],
                            (len(samples), head.num_classes) +
                            RELEASE_FEAT_HW, metas, stride)


def _rgb_image(src: Path, dst: Path) -> None:
    """Link ``src`` to ``dst``, or write an RGB copy when ``src`` is not
    RGB (mmdet3d's KITTI test frames are palette images; the release's
    dataset normalises three channels)."""
    from PIL import Image
    if dst.exists():
        return
    with Image.open(src) as image:
        if image.mode == 'RGB':
            os.symlink(src, dst)
        else:
            image.convert('RGB').save(dst)


def release_object_depth_targets(root: os.PathLike,
                                 ids: Sequence[str],
                                 work_dir: os.PathLike,
                                 all_class: bool = True,
                                 feat_hw: Tuple[int, int] = RELEASE_FEAT_HW
                                 ) -> np.ndarray:
    """The object depth map targets of DDML's release, by its own code.

    Runs, on the frames ``ids`` of a KITTI root, the three steps of
    mingyuShin/DDML-M3DOD: ``make_obj_depth.py`` paints every frame's
    label 2D boxes at full resolution, far to near, objects with
    ``z >= 2`` m of known KITTI difficulty (Cars, or every class with
    ``all_class``); ``KITTI_Dataset.__getitem__`` (split ``val``, no
    augmentation) warps the map to 1280x384 (nearest); and
    ``compute_obj_depth_loss`` resizes it to the feature map (bilinear,
    ``align_corners=True``) and masks the zeros. The last step's target
    and mask are read from the release's function itself, whose loss is
    replaced by a recorder.

    Args:
        root (PathLike): KITTI root (``training/{image_2,label_2,calib}``).
        ids (Sequence[str]): Frame names, e.g. ``['000000']``.
        work_dir (PathLike): Empty folder for the release's layout
            (``data/KITTI/...``, links to ``root``; RGB copies of images
            that are not RGB) and its ``.npy`` maps.
        all_class (bool): Every class (the release's 3-class setting,
            ``obj_depth_all``) or Cars only (``obj_depth``). Defaults to
            True.
        feat_hw (tuple[int, int]): Feature map (H, W). Defaults to the
            release's 96 x 320.

    Returns:
        np.ndarray: Targets in metres, shape (len(ids), H, W), 0 where the
        release's mask is off.

    Raises:
        ReferenceNotFound: When the release is absent.
    """
    import torch
    root, work = Path(root).resolve(), Path(work_dir)
    kitti = work / 'data' / 'KITTI'
    (kitti / 'training' / 'image_2').mkdir(parents=True, exist_ok=True)
    for sub in ('label_2', 'calib'):
        link = kitti / 'training' / sub
        if not link.exists():
            os.symlink(root / 'training' / sub, link)
    for name in ids:
        _rgb_image(root / 'training' / 'image_2' / f'{name}.png',
                   kitti / 'training' / 'image_2' / f'{name}.png')
    (kitti / 'ImageSets').mkdir(exist_ok=True)
    for split in ('trainval', 'val'):
        (kitti / 'ImageSets' / f'{split}.txt').write_text(
            ''.join(f'{i}\n' for i in ids))
    painter = import_release_module('ddml', 'make_obj_depth')
    painter.make_obj_depth(str(work), all_class=all_class)
    writelist = list(RELEASE_CLASSES) if all_class else ['Car']
    dataset = release_dataset(kitti, 'ddml', obj_depth=True,
                              writelist=writelist)
    recorded = {}

    def record(depth_input, depth_target, log_variance):
        recorded.update(target=depth_target, where=log_variance)
        return depth_target.sum() * 0.

    ns = load_definitions(
        'ddml', 'lib/losses/centernet_loss.py', ['compute_obj_depth_loss'],
        namespace=dict(laplacian_aleatoric_uncertainty_loss=record))
    height, width = feat_hw
    # float32 as in the release's training (cell indices are exact in it)
    cell_index = torch.arange(height * width, dtype=torch.float32)
    out = np.zeros((len(ids), height, width), np.float64)
    for item in range(len(ids)):
        _, targets, _ = dataset[item]
        full = torch.from_numpy(np.asarray(targets['obj_depth'],
                                           np.float32))[None]
        prediction = torch.stack(
            [torch.zeros_like(cell_index),
             cell_index]).reshape(1, 2, height, width)
        recorded.clear()
        ns.compute_obj_depth_loss(dict(obj_depth=prediction),
                                  dict(obj_depth=full),
                                  torch.zeros(1, 1, height, width))
        flat = np.zeros(height * width, np.float64)
        flat[recorded['where'].long().numpy()] = recorded['target'].numpy()
        out[item] = flat.reshape(height, width)
    return out
