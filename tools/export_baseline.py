"""Export a DepthDiscriminativeDetector checkpoint as a plain baseline one.

Keeps the wrapped detector's weights (``detector.*`` renamed to ``*``) and
``meta``; drops DDML's auxiliary modules and the optimizer / scheduler
states. The result loads strictly into the baseline config (e.g. mmdet3d's
SMOKE or PGD config) and predicts exactly as the wrapper did.

Example:
    python tools/export_baseline.py work_dirs/ddml_smoke/epoch_72.pth \
        work_dirs/ddml_smoke/smoke_baseline_epoch_72.pth
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description='Strip a DDML wrapper checkpoint to the baseline '
        'detector (strict-loadable by the plain config).')
    parser.add_argument('checkpoint', help='wrapper checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint (.pth)')
    parser.add_argument(
        '--prefix',
        default='detector.',
        help='prefix of the wrapped detector keys (default: detector.)')
    return parser.parse_args(argv)


def check_args(args) -> None:
    """The checkpoint is there and the output can be written beside it,
    without overwriting it: raises :class:`ddml.engine.cli.UsageError`."""
    cli.check_checkpoint(args.checkpoint)
    cli.check_out_file(args.out, 'out')
    if osp.exists(args.out) and osp.samefile(args.checkpoint, args.out):
        raise cli.BadValueError(
            f'out {args.out} is the checkpoint itself; give another file '
            'name, the export would replace the wrapper checkpoint')


def main(argv=None) -> None:
    args = parse_args(argv)
    check_args(args)
    import torch

    from ddml.compat import load_local_checkpoint
    from ddml.models.detectors.depth_discriminative import \
        export_baseline_checkpoint

    # weights_only loading with the allow-list of the types mmengine's own
    # checkpoints hold (numpy meta, message-hub buffers): a checkpoint that
    # carries anything else, e.g. a callable, is refused, never executed.
    checkpoint = load_local_checkpoint(args.checkpoint, map_location='cpu')
    try:
        exported = export_baseline_checkpoint(checkpoint, prefix=args.prefix)
    except ValueError as err:  # no key with the prefix: not a wrapper's
        raise cli.BadValueError(
            f'{args.checkpoint}: {err}; give the checkpoint of a ddml_* '
            'config (a plain detector needs no export), or the --prefix of '
            'its detector keys') from None
    torch.save(exported, args.out)
    info = exported['meta']['ddml_export']
    print(f'wrote {args.out}: {len(exported["state_dict"])} tensors; '
          f'dropped modules {info["dropped_modules"]} and entries '
          f'{info["dropped_entries"]}')


if __name__ == '__main__':
    cli.run(main)  # a user's mistake: one line on stderr, exit status 2
