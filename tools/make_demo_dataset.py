"""Render a synthetic KITTI- or Waymo-format dataset (and its mmdet3d infos).

Example::

    python tools/make_demo_dataset.py --out data/demo_kitti \
        --num-train 800 --num-val 200 --seed 0 --scale 0.5 --layout demo

writes ``training/{image_2,label_2,calib}``, ``ImageSets/{train,val,
trainval}.txt`` and, unless ``--no-infos``, ``kitti_infos_*.pkl`` ready for
mmdet3d's ``KittiDataset``; ``--num-test N`` adds a labelled held-out split
(``testing/``, ``ImageSets/test.txt``, ``kitti_infos_test.pkl``; read it
with ``data_prefix=dict(img='testing/image_2')``). The logic lives in
:mod:`ddml.data_tools.synthetic_kitti`; ``--layout demo`` renders the
demo's scenes (Cars only, 4-30 m, no skyline), ``general`` three classes
at 4-60 m.

``--format waymo`` writes what mmdet3d's Waymo converter writes instead,
with Waymo's front camera (1920x1280 at ``--scale 1``) and class sizes
(:mod:`ddml.data_tools.synthetic_waymo`)::

    python tools/make_demo_dataset.py --format waymo \
        --out data/synthetic_waymo/kitti_format --num-train 600 \
        --num-val 100 --num-test 300 --scale 0.3333333333333333

``training/image_0/*.jpg`` (train and val), ``testing/image_0/*.jpg``
(the labelled held-out split), ``ImageSets/*.txt`` and
``waymo_infos_{train,val,trainval[,test]}.pkl``; the output directory is
the ``kitti_format`` root a Waymo config's ``data_root`` names. There
``general`` is three classes at 4-75 m, ``demo`` the demo's scenes.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)

#: The scene layouts of --layout (:func:`layouts`).
LAYOUT_NAMES = ('demo', 'general')
#: Frames of a split at most (the frame ids have six digits).
MAX_FRAMES = 10**6


def layouts(fmt: str) -> dict:
    """--layout name -> SceneLayout for ``--format fmt``; Waymo's general
    layout reaches Waymo's 75 m label range."""
    from ddml.data_tools.synthetic_kitti import DEMO_LAYOUT, SceneLayout
    if fmt == 'waymo':
        from ddml.data_tools.synthetic_waymo import WAYMO_LAYOUT
        return dict(demo=DEMO_LAYOUT, general=WAYMO_LAYOUT)
    return dict(demo=DEMO_LAYOUT, general=SceneLayout())


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each checked: a mistake stops with one line and exit
    status 2 before anything is imported or written."""
    count = cli.int_at_least(0, MAX_FRAMES)
    parser = cli.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='dataset root to write')
    parser.add_argument('--num-train', type=count, required=True)
    parser.add_argument('--num-val', type=count, required=True)
    parser.add_argument(
        '--num-test', type=count, default=0,
        help='frames of a labelled held-out split in testing/ (its own '
        'seed stream; <tag>_infos_test.pkl), for claims made on data no '
        'design choice was made on')
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    parser.add_argument(
        '--scale', type=cli.float_above(0), default=1.0,
        help='image scale (1.0 = 1242x375 for kitti, 1920x1280 for '
        'waymo; the intrinsics\' first two rows scale with it)')
    parser.add_argument(
        '--workers', type=cli.int_at_least(1), default=None,
        help='worker processes (default min(2, cpus); output identical)')
    parser.add_argument(
        '--no-infos', action='store_true',
        help='skip writing kitti_infos_*.pkl (kitti only: the Waymo '
        'infos are its labels)')
    parser.add_argument('--layout', choices=LAYOUT_NAMES,
                        default='general',
                        help='scene contents: general (Car, Pedestrian, '
                        'Cyclist, 4-60 m; 4-75 m for waymo) or demo (Cars, '
                        '4-30 m, no skyline)')
    parser.add_argument(
        '--format', choices=('kitti', 'waymo'), default='kitti',
        help='kitti: KITTI object layout and kitti_infos; waymo: the '
        'kitti_format layout of mmdet3d\'s Waymo converter and waymo_infos')
    parser.add_argument('--extra-tag', default=None,
                        help='info file prefix (default: the format name)')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    if args.num_train + args.num_val == 0:
        parser.error('--num-train and --num-val are both 0; give at least '
                     'one frame')
    if args.format == 'waymo' and args.no_infos:
        parser.error('--no-infos applies to --format kitti only (the Waymo '
                     'infos are the labels)')
    if args.extra_tag is None:
        args.extra_tag = args.format
    if not args.extra_tag or osp.sep in args.extra_tag:
        parser.error(f'--extra-tag {args.extra_tag!r}: give a file name '
                     'prefix (no folder), e.g. kitti')
    try:
        cli.check_out_dir(args.out, '--out')
    except cli.UsageError as err:
        parser.error(str(err))
    return args


def render(args) -> dict:
    """Render what ``args`` asks for; info split -> file."""
    layout = layouts(args.format)[args.layout]
    common = dict(seed=args.seed, scale=args.scale, workers=args.workers,
                  progress=not args.no_progress, layout=layout,
                  num_test=args.num_test, extra_tag=args.extra_tag)
    if args.format == 'waymo':
        from ddml.data_tools.synthetic_waymo import make_waymo_dataset
        return make_waymo_dataset(args.out, args.num_train, args.num_val,
                                  **common)
    from ddml.data_tools.synthetic_kitti import make_demo_dataset
    return make_demo_dataset(args.out, args.num_train, args.num_val,
                             convert=not args.no_infos, **common)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        written = render(args)
    except FileExistsError as err:  # a testing/ folder, and --num-test 0
        raise cli.UsageError(cli.one_line(err)) from None
    for split, path in written.items():
        print(f'{split}: {path}')
    print(f'done in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
