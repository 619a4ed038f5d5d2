"""Reading and writing KITTI object-detection files.

Formats follow the KITTI object development kit (``devkit_object/readme.txt``,
"Data Format Description"):

* ``label_2/XXXXXX.txt``: one object a line, 15 space-separated values
  (16 for result files, the last being a score)::

      type truncated occluded alpha left top right bottom
      height width length x y z rotation_y [score]

  ``truncated`` is a float in [0, 1], ``occluded`` an integer (0 = fully
  visible, 1 = partly occluded, 2 = largely occluded, 3 = unknown),
  ``alpha`` the observation angle in [-pi, pi], the 2D box in 0-based pixel
  coordinates, dimensions in metres (height, width, length), location the
  bottom centre of the box in rectified camera coordinates (metres) and
  ``rotation_y`` the yaw around the camera Y axis in [-pi, pi].
* ``calib/XXXXXX.txt``: ``key: values`` lines ``P0``-``P3`` (3x4 projection
  matrices of the rectified cameras), ``R0_rect`` (3x3 rectifying rotation),
  ``Tr_velo_to_cam`` and ``Tr_imu_to_velo`` (3x4 rigid transforms).
* ``ImageSets/{train,val,test}.txt``: one frame index a line.

All parsers raise :class:`KittiFormatError`, whose message names the file,
the line and the field at fault and says how to fix it.
"""
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

__all__ = [
    'KittiFormatError', 'KittiObject', 'CALIB_KEYS', 'read_label_file',
    'format_label_line', 'write_label_file', 'read_calib_file',
    'format_calib', 'read_imageset_file', 'atomic_write_bytes',
    'atomic_dump_pickle'
]

PathLike = Union[str, os.PathLike]

#: Calibration keys of a KITTI ``calib/*.txt`` file and their matrix shapes.
CALIB_KEYS: Dict[str, tuple] = {
    'P0': (3, 4),
    'P1': (3, 4),
    'P2': (3, 4),
    'P3': (3, 4),
    'R0_rect': (3, 3),
    'Tr_velo_to_cam': (3, 4),
    'Tr_imu_to_velo': (3, 4),
}

# (name, column, parser) of the 15 label columns after ``type``.
_LABEL_FIELDS = [
    ('truncated', 1), ('occluded', 2), ('alpha', 3), ('bbox.left', 4),
    ('bbox.top', 5), ('bbox.right', 6), ('bbox.bottom', 7),
    ('dimensions.height', 8), ('dimensions.width', 9),
    ('dimensions.length', 10), ('location.x', 11), ('location.y', 12),
    ('location.z', 13), ('rotation_y', 14)
]


class KittiFormatError(ValueError):
    """A KITTI file is missing or malformed.

    Args:
        path (str | PathLike): The file at fault.
        message (str): What is wrong and how to fix it.
        line (int, optional): 1-based line number. Defaults to None.
        field (str, optional): Name of the field at fault. Defaults to None.
    """

    def __init__(self,
                 path: PathLike,
                 message: str,
                 line: Optional[int] = None,
                 field: Optional[str] = None) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f'{self.path}:{line}'
        what = '' if field is None else f" field '{field}':"
        super().__init__(f'{where}:{what} {message}')


class KittiObject(dict):
    """One parsed label line (a plain dict with attribute-free access).

    Keys: ``name`` (str), ``truncated`` (float), ``occluded`` (int),
    ``alpha`` (float, rad), ``bbox`` (list of 4 floats, px, x1 y1 x2 y2),
    ``dimensions`` (list of 3 floats, m, **h, w, l as in the file**),
    ``location`` (list of 3 floats, m, bottom centre in rectified camera
    coordinates), ``rotation_y`` (float, rad), ``score`` (float, 0 when the
    file has 15 columns).
    """


def read_label_file(path: PathLike) -> List[KittiObject]:
    """Parse a KITTI ``label_2`` file.

    Blank lines are skipped; columns may be separated by any whitespace.

    Args:
        path (str | PathLike): Path of the label file.

    Returns:
        list[KittiObject]: One entry a non-blank line, in file order.

    Raises:
        KittiFormatError: When the file is missing, a line does not have 15
            or 16 columns, or a value does not parse.
    """
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            path, 'label file not found; every frame listed in ImageSets '
            'needs training/label_2/<id>.txt')
    objects = []
    with open(path, 'r') as f:
        for lineno, raw in enumerate(f, start=1):
            parts = raw.split()
            if not parts:
                continue
            if len(parts) not in (15, 16):
                raise KittiFormatError(
                    path, f'expected 15 values (16 with a score), got '
                    f'{len(parts)}: {raw.strip()!r}. A KITTI label line is '
                    '"type truncated occluded alpha left top right bottom '
                    'h w l x y z rotation_y"', lineno)
            values = {}
            for name, col in _LABEL_FIELDS + ([('score', 15)]
                                              if len(parts) == 16 else []):
                token = parts[col]
                try:
                    if name == 'occluded':
                        values[name] = int(token)
                    else:
                        values[name] = float(token)
                except ValueError:
                    kind = 'an integer' if name == 'occluded' else 'a number'
                    raise KittiFormatError(
                        path, f'column {col + 1} must be {kind}, got '
                        f'{token!r}; fix the value in the label line',
                        lineno, name) from None
                if not np.isfinite(values[name]):
                    raise KittiFormatError(
                        path, f'column {col + 1} is not finite ({token!r})',
                        lineno, name)
            obj = KittiObject(
                name=parts[0],
                truncated=values['truncated'],
                occluded=values['occluded'],
                alpha=values['alpha'],
                bbox=[
                    values['bbox.left'], values['bbox.top'],
                    values['bbox.right'], values['bbox.bottom']
                ],
                dimensions=[
                    values['dimensions.height'], values['dimensions.width'],
                    values['dimensions.length']
                ],
                location=[
                    values['location.x'], values['location.y'],
                    values['location.z']
                ],
                rotation_y=values['rotation_y'],
                score=values.get('score', 0.0))
            objects.append(obj)
    return objects


def format_label_line(obj: Dict[str, Any],
                      decimals: Optional[int] = 2) -> str:
    """Format one object as a KITTI label line (2 decimals, as KITTI).

    Args:
        obj (dict): Keys as :class:`KittiObject` (``score`` is not
            written: ground-truth files have 15 columns).
        decimals (int, optional): Decimals of the float fields. None
            writes every float with full precision (``repr``), e.g. to
            rebuild a label file from infos without rounding. Defaults
            to 2.

    Returns:
        str: The line without a trailing newline.
    """

    def num(value: Any) -> str:
        if decimals is None:
            return repr(float(value))
        return f'{value:.{decimals}f}'

    fields = [
        obj['name'],
        num(obj['truncated']), f"{int(obj['occluded'])}",
        num(obj['alpha'])
    ]
    fields += [num(v) for v in obj['bbox']]
    fields += [num(v) for v in obj['dimensions']]
    fields += [num(v) for v in obj['location']]
    fields.append(num(obj['rotation_y']))
    if decimals is not None:
        # '-0.00' is legal but noisy; KITTI writes '0.00'.
        negative_zero = '-' + num(0.)
        fields = [num(0.) if f == negative_zero else f for f in fields]
    return ' '.join(fields)


def write_label_file(path: PathLike,
                     objects: List[Dict[str, Any]],
                     decimals: Optional[int] = 2) -> None:
    """Write a KITTI label file atomically.

    Args:
        path (str | PathLike): Destination.
        objects (list[dict]): Objects as accepted by
            :func:`format_label_line`.
        decimals (int, optional): See :func:`format_label_line`.
            Defaults to 2.
    """
    text = ''.join(format_label_line(o, decimals) + '\n' for o in objects)
    atomic_write_bytes(path, text.encode('ascii'))


def read_calib_file(path: PathLike) -> Dict[str, np.ndarray]:
    """Parse a KITTI ``calib`` file.

    Args:
        path (str | PathLike): Path of the calibration file.

    Returns:
        dict[str, np.ndarray]: Every key of :data:`CALIB_KEYS` as a float64
        array of its shape (3x4 or 3x3), plus any other keys found (flat).

    Raises:
        KittiFormatError: When the file is missing, a line is not
            ``key: numbers``, a value does not parse, a key has the wrong
            number of values or a required key is absent.
    """
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            path, 'calibration file not found; every frame listed in '
            'ImageSets needs <split>/calib/<id>.txt')
    calib: Dict[str, np.ndarray] = {}
    with open(path, 'r') as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if ':' not in raw:
                raise KittiFormatError(
                    path, f'expected "key: values", got {raw.strip()!r}',
                    lineno)
            key, _, rest = raw.partition(':')
            key = key.strip()
            try:
                vals = np.array([float(t) for t in rest.split()],
                                dtype=np.float64)
            except ValueError as e:
                raise KittiFormatError(
                    path, f'values must be numbers ({e}); fix the line',
                    lineno, key) from None
            if key in CALIB_KEYS:
                shape = CALIB_KEYS[key]
                if vals.size != shape[0] * shape[1]:
                    raise KittiFormatError(
                        path, f'expected {shape[0] * shape[1]} values '
                        f'({shape[0]}x{shape[1]}), got {vals.size}', lineno,
                        key)
                vals = vals.reshape(shape)
            calib[key] = vals
    missing = [k for k in CALIB_KEYS if k not in calib]
    if missing:
        raise KittiFormatError(
            path, f'missing calibration keys {missing}; a KITTI calib file '
            f'has {list(CALIB_KEYS)}')
    return calib


def format_calib(calib: Dict[str, np.ndarray]) -> str:
    """Format calibration matrices as a KITTI calib file.

    Args:
        calib (dict[str, np.ndarray]): Every key of :data:`CALIB_KEYS`.

    Returns:
        str: File content (KITTI's ``%e``-style number format).
    """
    lines = []
    for key, shape in CALIB_KEYS.items():
        mat = np.asarray(calib[key], dtype=np.float64)[:shape[0], :shape[1]]
        lines.append(key + ': ' +
                     ' '.join(f'{v:.12e}' for v in mat.reshape(-1)))
    return '\n'.join(lines) + '\n'


def read_imageset_file(path: PathLike) -> List[int]:
    """Read a KITTI ``ImageSets/*.txt`` file of frame indices.

    Args:
        path (str | PathLike): Path of the split file.

    Returns:
        list[int]: Frame indices in file order (blank lines skipped).

    Raises:
        KittiFormatError: When the file is missing, a line is not a
            non-negative integer, or an index is repeated.
    """
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            path, 'split file not found; create ImageSets/{train,val}.txt '
            '(and test.txt when testing/ exists) with one frame index a '
            'line, e.g. from the KITTI 3DOP/mmdet3d split')
    ids: List[int] = []
    seen: Dict[int, int] = {}
    with open(path, 'r') as f:
        for lineno, raw in enumerate(f, start=1):
            token = raw.strip()
            if not token:
                continue
            if not token.isdigit():
                raise KittiFormatError(
                    path, f'expected a frame index such as 000123, got '
                    f'{token!r}', lineno, 'frame index')
            idx = int(token)
            if idx in seen:
                raise KittiFormatError(
                    path, f'frame {token} is listed twice (first on line '
                    f'{seen[idx]})', lineno, 'frame index')
            seen[idx] = lineno
            ids.append(idx)
    return ids


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` and rename it.

    Readers see either the old file or the complete new one, never a
    partial file; the temporary file is removed on failure.

    Args:
        path (str | PathLike): Destination.
        data (bytes): Content.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_dump_pickle(obj: Any, path: PathLike) -> None:
    """Pickle ``obj`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    Args:
        obj: Any picklable object.
        path (str | PathLike): Destination.
    """
    atomic_write_bytes(path, pickle.dumps(obj, protocol=4))
