"""Plot validation figures against iterations for one or more runs.

Example (the demo's learning curve in docs/benchmarks.md)::

    python tools/plot_learning_curve.py work_dirs/lc_baseline \
        --out docs/figures/demo_learning_curve.png

Each run directory must hold mmengine's ``<timestamp>/vis_data/
scalars.json`` of a training with in-training validation
(``--cfg-options train_cfg.val_interval=N``). Prints a markdown table of the
figures too. The logic is :mod:`ddml.analysis.learning_curve`.
"""
import argparse
import os.path as osp
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='run work directories '
                        '(NAME=DIR to label a run)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--title', default='learning curve (val split)')
    args = parser.parse_args(argv)
    from ddml.analysis.demo_report import find_scalars
    from ddml.analysis.learning_curve import (curve_table,
                                              plot_learning_curves,
                                              read_val_curve)
    curves = {}
    for spec in args.runs:
        name, _, path = spec.rpartition('=')
        name = name or osp.basename(osp.normpath(path))
        scalars = find_scalars(path)
        if scalars is None:
            print(f'{path}: no <timestamp>/vis_data/scalars.json (is it a '
                  'run work directory?)', file=sys.stderr)
            return 1
        curves[name] = read_val_curve(scalars)
    print(curve_table(curves))
    print(plot_learning_curves(curves, args.out, args.title))
    return 0


if __name__ == '__main__':
    sys.exit(main())
