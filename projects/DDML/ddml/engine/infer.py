"""Run a monocular 3D detector on one's own images.

The package's inference entry point::

    python -m ddml.engine.infer CONFIG CHECKPOINT IMAGE [IMAGE ...] \\
        (--calib CALIB [CALIB ...] | --cam2img fx,fy,cx,cy) \\
        --out-dir DIR [--score-thr S] [--device cpu]

``tools/infer.py`` calls :func:`main`. Per image it writes into ``DIR`` a
picture with the projected 3D boxes (``<stem>.png``) and the boxes as JSON
(``<stem>.json``); the work is :mod:`ddml.apis.inference`'s. A mistake of
the user (a missing file, a bad option or value, a checkpoint of another
config) stops with status 2 and one line on stderr that names it and the
fix; every argument is checked before the model is built.
"""
import argparse
import sys
from typing import List, Optional

from ..apis.inference import (InferenceInputError, cam2img_from_calib,
                              cam2img_from_intrinsics, check_checkpoint_path,
                              check_config_path, check_device, check_image,
                              check_out_dir, infer_images, init_model,
                              output_paths, quiet_dependencies)
from .cli import ArgumentParser, CfgOptionsAction, UsageError, float_in

__all__ = ['infer_parser', 'main']


def infer_parser() -> argparse.ArgumentParser:
    """Argument parser of ``tools/infer.py``."""
    parser = ArgumentParser(
        prog='infer',
        description='Monocular 3D detection on images of one\'s own: per '
        'image, a picture with the projected 3D boxes (mmdet3d\'s '
        'visualiser) and a JSON of the boxes (camera frame, metres: x, y, '
        'z of the bottom centre, l, h, w, yaw, score, class), written into '
        '--out-dir.')
    parser.add_argument('config',
                        help='a monocular 3D config (plain or ddml_*)')
    parser.add_argument(
        'checkpoint',
        help='its checkpoint (a ddml wrapper checkpoint also loads into '
        'the plain config of its detector)')
    parser.add_argument('images', nargs='+', metavar='IMAGE',
                        help='image files')
    camera = parser.add_mutually_exclusive_group(required=True)
    camera.add_argument(
        '--calib',
        nargs='+',
        metavar='KITTI_CALIB',
        help='KITTI calib file(s) whose P2 is the camera matrix: one for '
        'all images or one per image, in order')
    camera.add_argument(
        '--cam2img',
        metavar='fx,fy,cx,cy',
        help='pinhole intrinsics in pixels, for all images')
    parser.add_argument(
        '--out-dir',
        required=True,
        metavar='DIR',
        help='folder for the pictures and JSON files (created when '
        'missing)')
    parser.add_argument(
        '--score-thr',
        type=float_in(0, 1),
        default=0.3,
        metavar='S',
        help='leave out boxes scored below S (default 0.3, as mmdet3d\'s '
        'demos; the model\'s own test_cfg threshold applies first)')
    parser.add_argument('--device', default='cpu',
                        help='cpu (default), cuda or cuda:N')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config, as key=value pairs, e.g. '
        'model.test_cfg.topk=20')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: check every argument, load the model, infer.

    Args:
        argv (list[str], optional): Arguments without the program name.
            None reads ``sys.argv``.

    Returns:
        int: 0 on success; mistakes exit with status 2 and one line on
        stderr.
    """
    parser = infer_parser()
    args = parser.parse_args(argv)
    try:
        with quiet_dependencies():
            results = _run(args)
    except UsageError as err:  # InferenceInputError among them
        parser.error(str(err))
    for res in results:
        print(f'{res["image"]}: {res["num_boxes"]} box(es) with score >= '
              f'{args.score_thr:g} -> {res["picture"]}, {res["json"]}')
    return 0


def _run(args: argparse.Namespace) -> List[dict]:
    """Check the arguments (the cheap checks first: nothing is built
    before they pass), build the model and infer."""
    check_config_path(args.config)
    check_checkpoint_path(args.checkpoint)
    if args.cam2img is not None:
        cam2imgs = [cam2img_from_intrinsics(args.cam2img)]
    else:
        if len(args.calib) not in (1, len(args.images)):
            raise InferenceInputError(
                f'--calib: {len(args.calib)} files for '
                f'{len(args.images)} images; give one for all images '
                'or one per image')
        cam2imgs = [cam2img_from_calib(p) for p in args.calib]
    for image in args.images:
        check_image(image)
    check_out_dir(args.out_dir)
    output_paths(args.images, args.out_dir)  # no input is overwritten
    check_device(args.device)
    model = init_model(args.config, args.checkpoint, args.device,
                       args.cfg_options)
    return infer_images(
        model,
        args.images,
        cam2imgs,
        args.out_dir,
        args.score_thr,
        sources=dict(config=args.config, checkpoint=args.checkpoint))


if __name__ == '__main__':
    sys.exit(main())
