"""Create mmdet3d v2 info files for a KITTI-format dataset.

Example::

    python tools/create_data.py kitti --root-path data/kitti \
        --out-dir data/kitti --extra-tag kitti

writes ``{extra_tag}_infos_{train,val,trainval}.pkl`` (and ``_test`` when
``testing/`` exists) as mmdet3d 1.4's ``tools/create_data.py kitti`` does,
including ``cam_instances['CAM2']`` for ``load_type='fov_image_based'``.
The logic lives in :mod:`ddml.data_tools.kitti_converter`.
"""
import argparse
import sys

from ddml.data_tools.kitti_converter import create_kitti_infos
from ddml.data_tools.kitti_io import KittiFormatError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset', choices=['kitti'], help='dataset type')
    parser.add_argument(
        '--root-path', required=True, help='KITTI root (holds ImageSets/)')
    parser.add_argument(
        '--out-dir', default=None, help='output folder (default: root)')
    parser.add_argument(
        '--extra-tag', default='kitti', help='prefix of the info files')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide progress bars')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        written = create_kitti_infos(
            args.root_path,
            args.out_dir,
            extra_tag=args.extra_tag,
            progress=not args.no_progress)
    except KittiFormatError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    for split, path in written.items():
        print(f'{split}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
