"""The tools' argument checks, :mod:`ddml.engine.cli`, loaded without
importing :mod:`ddml` first.

Importing the package registers mmdet3d's modules, which takes seconds; a
tool answers a mistake in its arguments before that. ``cli`` here is the
package's own module (it imports only the standard library), registered
under its name, so that ``ddml.engine.cli`` is one module whichever
imports it first. Where no ddml is installed (the Waymo oracle's
environment) it is read from this checkout. Use::

    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from _cli import cli  # noqa: E402
"""
import importlib
import importlib.util
import os.path as osp
import sys

NAME = 'ddml.engine.cli'
_CHECKOUT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                     'projects', 'DDML', 'ddml')


def _load():
    if NAME in sys.modules:
        return sys.modules[NAME]
    if 'ddml' in sys.modules:  # the package is there: import it as usual
        return importlib.import_module(NAME)
    spec = importlib.util.find_spec('ddml')  # finds it, runs nothing
    if spec is not None and spec.submodule_search_locations:
        name, package = NAME, list(spec.submodule_search_locations)[0]
    else:  # ddml is not installed here
        name, package = '_ddml_engine_cli', _CHECKOUT
    spec = importlib.util.spec_from_file_location(
        name, osp.join(package, 'engine', 'cli.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


cli = _load()
