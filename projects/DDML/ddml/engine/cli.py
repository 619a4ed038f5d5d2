"""A user's mistake on the command line, answered in one line.

Every command-line tool (``tools/*.py``, ``python -m ddml.engine.train``
and ``ddml.engine.test``) stops on a user's mistake (a missing file or
folder, a bad option, a bad value) with exit status 2 and one line on
stderr, ``<prog>: error: <what is wrong, named>; <the fix>``, and no
traceback; tracebacks stay for bugs. This module is where that is done:

* :class:`ArgumentParser`: argparse's parser whose errors are that one line
  (argparse prints its usage first), naming the closest option of a
  misspelt one;
* argparse ``type=`` checks of values (:func:`int_at_least`,
  :func:`float_above`, :func:`float_in`) and :class:`CfgOptionsAction`
  (``--cfg-options key=value ...``);
* checks of paths (:func:`check_config`, :func:`check_checkpoint`,
  :func:`check_file`, :func:`check_dir`, :func:`check_out_dir`,
  :func:`check_out_file`), which raise :class:`UsageError`, as does code
  of the package that finds a mistake in what a user gave it;
* :func:`run`, which calls a tool's ``main`` and turns a
  :class:`UsageError` into the line and status 2 (:func:`fail`).

It imports only the standard library, so that a tool checks its arguments
before it imports torch or mmdet3d: ``tools/_cli.py`` loads it without
importing :mod:`ddml` (whose import registers mmdet3d's modules and takes
seconds).
"""
import argparse
import difflib
import math
import os
import os.path as osp
import sys
from typing import Callable, Iterable, NoReturn, Optional, Sequence

__all__ = [
    'USAGE_STATUS', 'UsageError', 'MissingPathError', 'BadValueError',
    'SetupError', 'ArgumentParser', 'CfgOptionsAction', 'int_at_least',
    'float_above', 'float_in', 'check_file', 'check_config',
    'check_checkpoint', 'check_config_and_checkpoint', 'check_dir',
    'check_out_dir', 'check_out_file', 'check_names', 'closest', 'one_line',
    'program_name', 'fail', 'run', 'CONFIG_SUFFIXES', 'CHECKPOINT_SUFFIXES',
    'FIGURE_SUFFIXES', 'RENAMED_CONFIGS', 'current_config_name',
    'check_not_renamed', 'STACK_PACKAGES', 'run_module'
]

#: Exit status of a user's mistake (argparse's).
USAGE_STATUS = 2
#: What mmengine's ``Config.fromfile`` reads.
CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')
#: What torch / mmengine checkpoints are called.
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin', '.pkl')
#: Figure formats matplotlib writes by the file's extension.
FIGURE_SUFFIXES = ('.png', '.pdf', '.svg', '.jpg', '.jpeg', '.eps', '.webp',
                   '.tif', '.tiff')
#: Configs renamed (old file name -> new file name, same folder) and why.
#: :func:`check_config` refuses an old name and names the new one;
#: :func:`current_config_name` maps a record's old name to the new one.
RENAMED_CONFIGS = {
    f'{variant}monodle_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py':
    f'{variant}monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py'
    for variant in ('', 'ddml_', 'ddml-release_', 'ddml-metricdepth_')
}
_RENAMED_WHY = 'it trains 1,200 iterations, not 1k'
#: The packages the tools need; a tool run by a Python that lacks one of
#: them is told so in one line (:func:`run`).
STACK_PACKAGES = ('ddml', 'torch', 'torchvision', 'mmengine', 'mmcv',
                  'mmdet', 'mmdet3d')


class UsageError(Exception):
    """A user's mistake: the message is one line that names the file,
    option or value at fault and the fix. :func:`run` prints it as
    ``<prog>: error: <message>`` and exits with status 2."""


class MissingPathError(UsageError, FileNotFoundError):
    """A file or folder given on the command line is not there (or is a
    folder where a file was asked for, and the other way round)."""


class BadValueError(UsageError, ValueError):
    """An option's value, or a combination of options, that cannot work."""


class SetupError(UsageError, RuntimeError):
    """The options need what this machine lacks (a GPU, a package)."""


def one_line(text) -> str:
    """``text`` with its line breaks and runs of white space made single
    spaces."""
    return ' '.join(str(text).split())


def program_name() -> str:
    """The running script's name, as argparse names it (``prog``)."""
    name = osp.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
    return name or 'ddml'


def fail(message, prog: Optional[str] = None) -> NoReturn:
    """Print ``<prog>: error: <message>`` (one line) to stderr and exit with
    status 2.

    Args:
        message: What is wrong and the fix.
        prog (str, optional): The program. Defaults to the script's name.
    """
    sys.stdout.flush()
    print(f'{prog or program_name()}: error: {one_line(message)}',
          file=sys.stderr, flush=True)
    raise SystemExit(USAGE_STATUS)


def run(main: Callable, *args, prog: Optional[str] = None):
    """Call a tool's ``main(*args)``; a :class:`UsageError` becomes one line
    on stderr and exit status 2 (:func:`fail`), anything else (a bug)
    keeps its traceback.

    A Python that lacks one of :data:`STACK_PACKAGES` (the tool run by the
    wrong interpreter) is a user's mistake too: one line that names the
    package, the interpreter and the fix.

    Use it as ``sys.exit(cli.run(main))`` (or ``cli.run(main)`` for a
    ``main`` that returns nothing).

    Returns:
        What ``main`` returned.
    """
    try:
        return main(*args)
    except UsageError as err:
        fail(err, prog)
    except ModuleNotFoundError as err:
        if err.name not in STACK_PACKAGES:
            raise  # a module of a package that is there: a bug
        fail(f'{err.name} is not installed for {sys.executable}; run the '
             'tools with the Python of the environment that `make install` '
             'creates ($DDML_VENV/bin/python, by default .venv/bin/python '
             'in the checkout), or install the stack and ddml into this one '
             '(README, "Two commands")', prog)


def run_module(module: str, prog: Optional[str] = None):
    """:func:`run` of ``module``'s ``main()``, the module imported inside it
    (so that a Python without the stack is answered in one line too): the
    body of ``tools/train.py`` and its siblings.

    Args:
        module (str): Dotted name, e.g. ``'ddml.engine.train'``.
        prog (str, optional): The program. Defaults to the script's name.

    Returns:
        What ``main()`` returned.
    """
    import importlib
    return run(lambda: importlib.import_module(module).main(), prog=prog)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (no usage above them):
    ``<prog>: error: <message>``, exit status 2. A misspelt option is
    answered with the closest one (``did you mean --iters?``)."""

    def error(self, message: str) -> NoReturn:
        message = one_line(message)
        if message.startswith('unrecognized arguments:'):
            message += '; ' + self._suggest(message.split(':', 1)[1].split())
        elif message.startswith('the following arguments are required'):
            message += f'; see {self.prog} --help'
        fail(message, self.prog)

    def _suggest(self, unknown: Sequence[str]) -> str:
        options = sorted(self._option_string_actions)
        hints = []
        for arg in unknown:
            if not arg.startswith('-'):
                continue
            match = closest(arg.split('=', 1)[0], options)
            if match and match not in hints:
                hints.append(match)
        if hints:
            return f'did you mean {" or ".join(hints)}? ({self.prog} --help ' \
                'lists the options)'
        return f'{self.prog} --help lists the options'


class CfgOptionsAction(argparse.Action):
    """``--cfg-options key=value ...`` parsed as mmengine's ``DictAction``
    parses it, with a value that is not ``key=value`` answered in one line
    (``DictAction`` raises a ValueError from inside argparse)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or []:
            key, sep, value = item.partition('=')
            if not sep or not key:
                raise argparse.ArgumentError(
                    self, f'{item!r} is not key=value; write e.g. '
                    'train_cfg.max_iters=10 (no spaces around =), or '
                    'key="[a,b]" for a list')
            options[key] = DictAction._parse_iterable(value)
        setattr(namespace, self.dest, options)


def _type_check(name: str, check: Callable[[str], object]):
    check.__name__ = name  # argparse names the type in some messages
    return check


def int_at_least(minimum: int, maximum: Optional[int] = None):
    """argparse ``type=``: a whole number ``>= minimum`` (and
    ``<= maximum``), e.g. ``int_at_least(1)`` for ``--iters``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not a whole number; give one >= {minimum}'
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f'{value} is too small; give a whole number >= {minimum}')
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f'{value} is too large; give a whole number <= {maximum}')
        return value

    return _type_check(f'int >= {minimum}', parse)


def _float(text: str, want: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a finite number; give one {want}')
    return value


def float_above(minimum: float, inclusive: bool = False):
    """argparse ``type=``: a finite number ``> minimum`` (``>=`` with
    ``inclusive``)."""
    want = f'{">=" if inclusive else ">"} {minimum:g}'

    def parse(text: str) -> float:
        value = _float(text, want)
        if value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(
                f'{value:g} is too small; give a number {want}')
        return value

    return _type_check(f'float {want}', parse)


def float_in(low: float, high: float):
    """argparse ``type=``: a finite number in ``[low, high]``."""
    want = f'in [{low:g}, {high:g}]'

    def parse(text: str) -> float:
        value = _float(text, want)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f'{value:g} is out of range; give a number {want}')
        return value

    return _type_check(f'float {want}', parse)


def closest(name: str, choices: Iterable[str]) -> Optional[str]:
    """The choice most like ``name`` (difflib), or None."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _nearby(path: str, files: bool = True) -> Optional[str]:
    """A file (or folder) beside the missing ``path`` whose name is most
    like its name, as a path the user can paste."""
    folder, name = osp.split(osp.normpath(path))
    folder = folder or '.'
    if not name or not osp.isdir(folder):
        return None
    try:
        entries = os.listdir(folder)
    except OSError:
        return None
    test = osp.isfile if files else osp.isdir
    suffix = osp.splitext(name)[1] if files else ''
    choices = [e for e in entries if test(osp.join(folder, e))
               and (not suffix or e.endswith(suffix))]
    match = closest(name, choices)
    if match is None:
        return None
    return osp.join(osp.dirname(path), match)


def _missing(what: str, path: str, fix: str, files: bool = True) -> str:
    kind = 'file' if files else 'folder'
    if osp.exists(path):
        other = 'folder' if files else 'file'
        return f'{what} {path} is a {other}, not a {kind}; {fix}'
    hint = _nearby(path, files)
    if hint is not None:
        return f'{what} {path}: no such {kind}; did you mean {hint}?'
    return f'{what} {path}: no such {kind}; {fix}'


def check_file(path: str, what: str, fix: str) -> str:
    """Raise :class:`MissingPathError` unless ``path`` is a file.

    Args:
        path (str): The path given.
        what (str): What it is, as the user gave it, e.g. ``'--calib'``.
        fix (str): What to give instead, named in the message when no file
            with a close name is beside it.

    Returns:
        str: ``path``.
    """
    if not osp.isfile(path):
        raise MissingPathError(_missing(what, path, fix))
    return path


def check_dir(path: str, what: str, fix: str) -> str:
    """Raise :class:`MissingPathError` unless ``path`` is a folder (see
    :func:`check_file`)."""
    if not osp.isdir(path):
        raise MissingPathError(_missing(what, path, fix, files=False))
    return path


def _mmdet3d_config(path: str) -> Optional[str]:
    """Where ``mmdet3d::rel/path.py`` lies (mmdet3d's ``.mim/configs``), or
    None without an mmdet3d to look in (mmengine then says why)."""
    import importlib.util
    scope, _, rel = path.partition('::')
    try:
        spec = importlib.util.find_spec(scope)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return osp.join(list(spec.submodule_search_locations)[0], '.mim',
                    'configs', rel)


def check_config(path: str, what: str = 'config') -> str:
    """Raise :class:`UsageError` unless ``path`` is a config file
    mmengine reads (``.py``, ``.json``, ``.yaml``); ``mmdet3d::rel/path``
    is looked up in mmdet3d's configs.

    Returns:
        str: ``path``.
    """
    fix = 'give the path of a config file (the configs are in configs/)'
    if '::' in path:
        where = _mmdet3d_config(path)
        if where is not None and not osp.isfile(where):
            raise MissingPathError(
                f'{what} {path}: mmdet3d has no such config ({where} is '
                "missing); give one of mmdet3d's configs or a file path")
        return path
    suffix = osp.splitext(path)[1].lower()
    if suffix in CHECKPOINT_SUFFIXES:
        raise BadValueError(
            f'{what} {path} is a checkpoint, not a config; give the config '
            f'({"/".join(CONFIG_SUFFIXES)}) there')
    if osp.isdir(path) or suffix not in CONFIG_SUFFIXES:
        if osp.exists(path):
            raise BadValueError(
                f'{what} {path} is not a config file '
                f'({", ".join(CONFIG_SUFFIXES)}); {fix}')
    check_not_renamed(path, what)
    return check_file(path, what, fix)


def check_not_renamed(path: str, what: str = 'config') -> str:
    """Raise :class:`MissingPathError` naming the new file if ``path`` is
    a renamed config's old name (:data:`RENAMED_CONFIGS`) and is not there.

    Returns:
        str: ``path``.
    """
    new = current_config_name(path)
    if new != path and not osp.exists(path):
        raise MissingPathError(
            f'{what} {path} was renamed to {new} ({_RENAMED_WHY}); give '
            'the new name')
    return path


def current_config_name(path: str) -> str:
    """``path`` with a renamed config's file name replaced by its new
    name (:data:`RENAMED_CONFIGS`; the folder is kept), else ``path``.

    Records written before a rename name the old file; compare configs
    through this function.
    """
    if not path:
        return path
    folder, name = osp.split(path)
    new = RENAMED_CONFIGS.get(name)
    return osp.join(folder, new) if new else path


def check_checkpoint(path: str, what: str = 'checkpoint') -> str:
    """Raise :class:`UsageError` unless ``path`` is a file that is not a
    config (a checkpoint given where a config goes, or the other way
    round, is the usual slip).

    Returns:
        str: ``path``.
    """
    suffix = osp.splitext(path)[1].lower()
    if suffix in CONFIG_SUFFIXES and '::' not in path:
        raise BadValueError(
            f'{what} {path} is a config, not a checkpoint; give the '
            'checkpoint (.pth) there')
    folder = osp.dirname(path) or '.'
    latest = osp.join(folder, 'last_checkpoint')
    fix = 'give a checkpoint (.pth) that training wrote, e.g. ' \
        'work_dirs/<config name>/iter_<N>.pth'
    if not osp.exists(path) and osp.isfile(latest):
        try:
            with open(latest) as f:
                last = f.read().strip()
        except OSError:
            last = ''
        if last:
            fix = f'the latest checkpoint there is {last}'
    return check_file(path, what, fix)


def check_config_and_checkpoint(config: str, checkpoint: str) -> None:
    """:func:`check_config` and :func:`check_checkpoint`, and a config and
    checkpoint given the wrong way round named as such."""
    if osp.splitext(config)[1].lower() in CHECKPOINT_SUFFIXES and \
            osp.splitext(checkpoint)[1].lower() in CONFIG_SUFFIXES:
        raise BadValueError(
            f'config {config} and checkpoint {checkpoint} are the wrong way '
            'round; give the config first, then the checkpoint')
    check_config(config)
    check_checkpoint(checkpoint)


def check_out_dir(path: str, what: str) -> str:
    """Raise :class:`BadValueError` when ``path``, where outputs go (and
    which is created when missing), is a file or lies under one.

    Returns:
        str: ``path``.
    """
    here = osp.abspath(path)
    while not osp.exists(here):
        parent = osp.dirname(here)
        if parent == here:
            break
        here = parent
    if osp.exists(here) and not osp.isdir(here):
        what = f'{what} {path} is' if here == osp.abspath(path) else \
            f'{what} {path}: {here} is'
        raise BadValueError(
            f'{what} a file, not a folder; give a folder for the outputs')
    return path


def check_out_file(path: str, what: str,
                   suffixes: Optional[Sequence[str]] = None,
                   make_dirs: bool = False) -> str:
    """Raise :class:`UsageError` unless ``path`` can be written: not a
    folder, its folder there (or, with ``make_dirs``, creatable), its
    extension one of ``suffixes``.

    Returns:
        str: ``path``.
    """
    if osp.isdir(path):
        raise BadValueError(
            f'{what} {path} is a folder; give a file name in it')
    suffix = osp.splitext(path)[1].lower()
    if suffixes and suffix not in suffixes:
        raise BadValueError(
            f'{what} {path}: {"no extension" if not suffix else suffix} is '
            f'not one of {", ".join(suffixes)}; end the name with one')
    folder = osp.dirname(osp.abspath(path))
    if make_dirs:
        check_out_dir(folder, f'{what} {path}: its folder')
    elif not osp.isdir(folder):
        raise MissingPathError(
            f'{what} {path}: its folder {folder} does not exist; create it '
            'first')
    return path


def check_names(names: Iterable[str], choices: Sequence[str],
                what: str) -> None:
    """Raise :class:`BadValueError` naming the first of ``names`` that is
    not one of ``choices`` (and the closest choice)."""
    for name in names:
        if name not in choices:
            hint = closest(name, choices)
            raise BadValueError(
                f'{what}: {name!r} is not one of {", ".join(choices)}'
                + (f'; did you mean {hint!r}?' if hint else ''))
