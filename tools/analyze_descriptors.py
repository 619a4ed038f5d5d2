"""How depth-discriminative are a trained detector's object descriptors?

Example (the demo's DDML model)::

    python tools/analyze_descriptors.py \
        configs/demo/ddml_monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py \
        work_dirs/demo/ddml/iter_1200.pth --split val --out-dir work_dirs/desc

Reads one descriptor per ground-truth object (the wrapper's
``feature_level``/``descriptor_pool`` for a DepthDiscriminativeDetector
config, level 0 and 5x5 for a plain detector config) over the split, prints
the Spearman rank correlation between descriptor distance and depth
distance of all object pairs and the fraction of pairs within ``eps`` that
satisfy ``d/K - B <= e <= K d + B``, and writes two PNGs (pairs with the
bounds, PCA coloured by depth). ``--kitti`` also evaluates the predictions.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)

#: The info splits a config's ann_file can be switched to.
SPLITS = ('train', 'val', 'trainval', 'test')


def parse_args(argv=None):
    """The options, each value checked; the files by :func:`check_args`.
    A mistake: one line, exit status 2."""
    parser = cli.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='model config (plain or wrapper)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint; omitted: random initialisation')
    parser.add_argument('--split', default='val', choices=SPLITS,
                        help='info split (default val)')
    parser.add_argument('--data-root', default=None,
                        help="dataset root replacing the config's")
    parser.add_argument('--out-dir', default=None,
                        help='where the PNGs and stats.json go (default: '
                        'work_dirs/descriptors/<config name>)')
    parser.add_argument('--name', default=None,
                        help='file name prefix (default: config name)')
    parser.add_argument('--K', type=cli.float_above(1, inclusive=True),
                        default=None,
                        help="quasi-isometry K (default: the config's "
                        'qi_loss, else 1.5)')
    parser.add_argument('--B', type=cli.float_above(0, inclusive=True),
                        default=None, help='default 0.5')
    parser.add_argument('--eps', type=cli.float_above(0), default=None,
                        help='neighbourhood radius (m), default 10')
    parser.add_argument('--kitti', action='store_true',
                        help='also report KITTI Car AP40 and depth error')
    parser.add_argument('--max-images', type=cli.int_at_least(1),
                        default=None)
    parser.add_argument('--cfg-options', nargs='+',
                        action=cli.CfgOptionsAction)
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def check_args(args) -> None:
    """The config, the checkpoint and the folders: raises
    :class:`ddml.engine.cli.UsageError`, one line naming it and the fix."""
    if args.checkpoint is None:
        cli.check_config(args.config)
    else:
        cli.check_config_and_checkpoint(args.config, args.checkpoint)
    if args.data_root is not None:
        cli.check_dir(args.data_root, '--data-root', 'give the dataset root '
                      'that holds the info files')
    if args.out_dir is not None:
        cli.check_out_dir(args.out_dir, '--out-dir')
    if args.name is not None and (not args.name or osp.sep in args.name):
        raise cli.BadValueError(f'--name {args.name!r}: give a file name '
                                'prefix (no folder)')


def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    import warnings
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    import numpy as np

    from mmengine.config import Config

    from ddml.analysis.descriptor_analysis import descriptor_report
    from ddml.analysis.model_eval import (check_split_data,
                                          evaluate_checkpoint)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    check_split_data(cfg, args.split, args.data_root)
    name = args.name or osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', 'descriptors', name)
    os.makedirs(out_dir, exist_ok=True)
    res = evaluate_checkpoint(
        cfg, args.checkpoint, split=args.split,
        data_root=args.data_root,  # --cfg-options: merged into cfg above
        kitti=args.kitti, max_images=args.max_images,
        progress=not args.no_progress,
        log_file=osp.join(out_dir, f'{name}_kitti_eval.log'))
    s = res['settings']
    K = args.K if args.K is not None else s['K']
    B = args.B if args.B is not None else s['B']
    eps = args.eps if args.eps is not None else s['eps']
    if res['descriptors'].shape[0] < 2:
        print(f'only {res["descriptors"].shape[0]} object(s) in '
              f'{args.split}: nothing to compare')
        return 1
    stats = descriptor_report(res['descriptors'], res['depths'], out_dir,
                              name, K, B, eps, title=name)
    kind = 'DepthDiscriminativeDetector' if s['wrapper'] else 'plain detector'
    print(f'{kind}: feature level {s["feature_level"]}, '
          f'{s["descriptor_pool"]}x{s["descriptor_pool"]} pooling, depths '
          f'{s["min_depth"]:g}-{s["max_depth"]:g} m; {res["num_images"]} '
          f'images of {args.split}')
    print(f'objects: {stats["num_objects"]}, pairs: {stats["num_pairs"]}, '
          f'mean descriptor distance {stats["mean_desc_dist"]:.4g}, mean '
          f'depth distance {stats["mean_depth_dist"]:.3g} m')
    print(f'Spearman rank correlation (descriptor vs depth distance, all '
          f'pairs): {stats["spearman"]:.4f}')
    print(f'pairs with 0 < d <= eps={eps:g} m: {stats["num_pairs_eps"]}; '
          f'inside [d/K - B, K d + B] (K={K:g}, B={B:g}): '
          f'{100 * stats["frac_inside"]:.1f} %  (above: '
          f'{100 * stats["frac_above"]:.1f} %, below: '
          f'{100 * stats["frac_below"]:.1f} %)')
    print(f'depth read from the descriptor by a linear map (5-fold ridge): '
          f'MAE {stats["probe_mae"]:.3f} m, R^2 {stats["probe_r2"]:.3f}')
    if args.kitti and res.get('car'):
        car = res['car']
        print('Car AP40 3D / BEV (moderate, strict IoU 0.7): '
              f'{car.get("AP3D_mod", float("nan")):.2f} / '
              f'{car.get("APBEV_mod", float("nan")):.2f}; loose IoU 0.5: '
              f'{car.get("AP3D_mod_loose", float("nan")):.2f} / '
              f'{car.get("APBEV_mod_loose", float("nan")):.2f}')
        d = res['depth']
        print(f'depth error of matched detections (2D IoU >= 0.5): MAE '
              f'{d["mae"]:.3f} m over {d["num_matched"]} matches')
    for path in stats['figures']:
        print(f'figure: {path}')
    summary = {k: v for k, v in stats.items()}
    summary.update(K=K, B=B, eps=eps, split=args.split,
                   num_images=res['num_images'], settings=s,
                   infer_ms=res['infer_ms'], car=res.get('car'),
                   depth=res.get('depth'))
    with open(osp.join(out_dir, f'{name}_stats.json'), 'w') as f:
        json.dump(summary, f, indent=1, default=lambda o: o.tolist()
                  if isinstance(o, np.ndarray) else str(o))
    np.savez_compressed(osp.join(out_dir, f'{name}_descriptors.npz'),
                        descriptors=res['descriptors'], depths=res['depths'],
                        labels=res['labels'])
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
