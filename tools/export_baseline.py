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

import torch

from ddml.compat import load_local_checkpoint
from ddml.models.detectors.depth_discriminative import \
    export_baseline_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Strip a DDML wrapper checkpoint to the baseline '
        'detector (strict-loadable by the plain config).')
    parser.add_argument('checkpoint', help='wrapper checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint (.pth)')
    parser.add_argument(
        '--prefix',
        default='detector.',
        help='prefix of the wrapped detector keys (default: detector.)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # weights_only loading with the allow-list of the types mmengine's own
    # checkpoints hold (numpy meta, message-hub buffers): a checkpoint that
    # carries anything else, e.g. a callable, is refused, never executed.
    checkpoint = load_local_checkpoint(args.checkpoint, map_location='cpu')
    exported = export_baseline_checkpoint(checkpoint, prefix=args.prefix)
    torch.save(exported, args.out)
    info = exported['meta']['ddml_export']
    print(f'wrote {args.out}: {len(exported["state_dict"])} tensors; '
          f'dropped modules {info["dropped_modules"]} and entries '
          f'{info["dropped_entries"]}')


if __name__ == '__main__':
    main()
