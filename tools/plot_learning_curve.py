"""Plot validation figures against iterations for one or more runs.

Example (runs named in the legend as ``NAME=DIR``; docs/benchmarks.md,
"Why this detector", draws the demo's learning curve this way)::

    python tools/plot_learning_curve.py "baseline=work_dirs/lc_baseline" \
        "ddml=work_dirs/lc_ddml" --out learning_curve.png

Each run directory must hold mmengine's ``<timestamp>/vis_data/
scalars.json`` of a training with in-training validation
(``--cfg-options train_cfg.val_interval=N``). Prints a markdown table of the
figures too. The logic is :mod:`ddml.analysis.learning_curve`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _cli import cli  # noqa: E402  (the checks, without importing ddml)


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='run work directories '
                        '(NAME=DIR to label a run)')
    parser.add_argument('--out', required=True, help='figure to write '
                        f'({", ".join(cli.FIGURE_SUFFIXES)})')
    parser.add_argument('--title', default='learning curve (val split)')
    return parser.parse_args(argv)


def run_dirs(args) -> dict:
    """Run name -> work directory of ``args.runs`` (``NAME=DIR`` or
    ``DIR``), each checked: raises :class:`ddml.engine.cli.UsageError`."""
    runs = {}
    for spec in args.runs:
        name, _, path = spec.rpartition('=')
        name = name or osp.basename(osp.normpath(path))
        cli.check_dir(path, 'run', 'give the work directory of a training '
                      '(--work-dir of tools/train.py)')
        if name in runs:
            raise cli.BadValueError(
                f'run {spec}: the name {name} is given twice; label the runs '
                'as NAME=DIR')
        runs[name] = path
    cli.check_out_file(args.out, '--out', cli.FIGURE_SUFFIXES,
                       make_dirs=True)
    return runs


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = run_dirs(args)
    from ddml.analysis.demo_report import find_scalars
    from ddml.analysis.learning_curve import (curve_table,
                                              plot_learning_curves,
                                              read_val_curve)
    curves = {}
    for name, path in runs.items():
        scalars = find_scalars(path)
        if scalars is None:
            raise cli.MissingPathError(
                f'run {path}: no <timestamp>/vis_data/scalars.json in it; '
                'give the --work-dir of a training (tools/train.py)')
        try:
            curves[name] = read_val_curve(scalars)
        except ValueError as err:  # no validation line: the fix is named
            raise cli.BadValueError(f'run {path}: {err}') from None
    print(curve_table(curves))
    print(plot_learning_curves(curves, args.out, args.title))
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main))
