"""Fixtures of the parity tests (tests/test_parity).

The releases are read from ``../shared/reference`` by
:mod:`ddml.testing.reference`, which also writes the KITTI frames both
sides read; every fixture here skips its tests, with the reason, when the
releases are absent.
"""
from pathlib import Path
from types import SimpleNamespace

import pytest

from ddml.testing.reference import import_release_module, require_release


@pytest.fixture(scope='session')
def monodle_release() -> Path:
    """MonoDLE's release tree; skips when ``../shared/reference`` is absent.
    """
    return require_release('monodle')


@pytest.fixture(scope='session')
def ddml_release() -> Path:
    """DDML's release tree; skips when ``../shared/reference`` is absent."""
    return require_release('ddml')


@pytest.fixture(scope='session')
def monodle_lib(monodle_release) -> SimpleNamespace:
    """MonoDLE's modules that import here (losses, decoding, utils)."""
    names = dict(
        utils='lib.datasets.utils',
        kitti_utils='lib.datasets.kitti.kitti_utils',
        focal='lib.losses.focal_loss',
        uncertainty='lib.losses.uncertainty_loss',
        dim_aware='lib.losses.dim_aware_loss',
        centernet='lib.losses.centernet_loss',
        decode='lib.helpers.decode_helper')
    return SimpleNamespace(**{
        k: import_release_module('monodle', v)
        for k, v in names.items()
    })
