"""Create mmdet3d v2 info files for a KITTI-format dataset.

Example::

    python tools/create_data.py kitti --root-path data/kitti \
        --out-dir data/kitti --extra-tag kitti

writes ``{extra_tag}_infos_{train,val,trainval}.pkl`` (and ``_test`` when
``testing/`` exists) as mmdet3d 1.4's ``tools/create_data.py kitti`` does,
including ``cam_instances['CAM2']`` for ``load_type='fov_image_based'``.
The logic lives in :mod:`ddml.data_tools.kitti_converter`.

A mistake on the command line (a root that is not there or not a KITTI
root, an output folder that is a file) stops with one line and exit status
2; a file of the dataset that is missing or malformed with one line naming
it and exit status 1.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split('\n')[0])
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


def check_args(args) -> None:
    """The root is a KITTI root and the output folder can be written:
    raises :class:`ddml.engine.cli.UsageError` (one line)."""
    root = args.root_path
    cli.check_dir(root, '--root-path', 'give the KITTI root, the folder '
                  'that holds ImageSets/ and training/')
    if not any(osp.isdir(osp.join(root, d))
               for d in ('ImageSets', 'training')):
        parent = osp.dirname(osp.normpath(osp.abspath(root)))
        hint = f'; did you mean {parent}?' if osp.isdir(
            osp.join(parent, 'ImageSets')) else ''
        raise cli.MissingPathError(
            f'--root-path {root} has neither ImageSets/ nor training/: not a '
            'KITTI root; give the folder that holds them' + hint)
    if args.out_dir is not None:
        cli.check_out_dir(args.out_dir, '--out-dir')
    if not args.extra_tag or osp.sep in args.extra_tag:
        raise cli.BadValueError(
            f'--extra-tag {args.extra_tag!r}: give a file name prefix '
            '(no folder), e.g. kitti')


def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    from ddml.data_tools.kitti_converter import create_kitti_infos
    from ddml.data_tools.kitti_io import KittiFormatError
    try:
        written = create_kitti_infos(
            args.root_path,
            args.out_dir,
            extra_tag=args.extra_tag,
            progress=not args.no_progress)
    except KittiFormatError as e:  # the data, not the command line
        print(f'{cli.program_name()}: error: {cli.one_line(e)}',
              file=sys.stderr)
        return 1
    for split, path in written.items():
        print(f'{split}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
