"""Render a synthetic KITTI-format dataset (and its mmdet3d infos).

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
"""
import argparse
import sys
import time

from ddml.data_tools.synthetic_kitti import (DEMO_LAYOUT, SceneLayout,
                                             make_demo_dataset)

LAYOUTS = dict(demo=DEMO_LAYOUT, general=SceneLayout())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='dataset root to write')
    parser.add_argument('--num-train', type=int, required=True)
    parser.add_argument('--num-val', type=int, required=True)
    parser.add_argument(
        '--num-test', type=int, default=0,
        help='frames of a labelled held-out split in testing/ (its own '
        'seed stream; kitti_infos_test.pkl), for claims made on data no '
        'design choice was made on')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--scale', type=float, default=1.0,
        help='image scale (1.0 = 1242x375; P rows 1-2 scale with it)')
    parser.add_argument(
        '--workers', type=int, default=None,
        help='worker processes (default min(2, cpus); output identical)')
    parser.add_argument(
        '--no-infos', action='store_true',
        help='skip writing kitti_infos_*.pkl')
    parser.add_argument('--layout', choices=sorted(LAYOUTS),
                        default='general',
                        help='scene contents: general (Car, Pedestrian, '
                        'Cyclist, 4-60 m) or demo (Cars, 4-30 m, no skyline)')
    parser.add_argument('--extra-tag', default='kitti')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    written = make_demo_dataset(
        args.out,
        args.num_train,
        args.num_val,
        seed=args.seed,
        scale=args.scale,
        workers=args.workers,
        progress=not args.no_progress,
        convert=not args.no_infos,
        extra_tag=args.extra_tag,
        layout=LAYOUTS[args.layout],
        num_test=args.num_test)
    for split, path in written.items():
        print(f'{split}: {path}')
    print(f'done in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
