"""The method's defaults are defined once (ddml.models.defaults) and every
module that takes them as arguments uses those constants."""
import inspect

import pytest

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

import ddml  # noqa: E402,F401  (registration)
from ddml.models import defaults  # noqa: E402
from ddml.models.descriptors import (collect_object_descriptors,  # noqa
                                     gather_pooled_at_cells,
                                     pool_descriptor_map, select_objects)
from ddml.models.detectors import DepthDiscriminativeDetector  # noqa: E402
from ddml.models.heads import ObjectDepthMapHead  # noqa: E402
from ddml.models.losses import QuasiIsometricLoss  # noqa: E402


def _defaults(fn):
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize('fn, expected', [
    (DepthDiscriminativeDetector.__init__,
     dict(feature_level=defaults.FEATURE_LEVEL,
          descriptor_pool=defaults.DESCRIPTOR_POOL,
          min_depth=defaults.MIN_DEPTH, max_depth=defaults.MAX_DEPTH)),
    (ObjectDepthMapHead.__init__,
     dict(min_depth=defaults.MIN_DEPTH, max_depth=defaults.MAX_DEPTH)),
    (QuasiIsometricLoss.__init__,
     dict(K=defaults.QI_K, B=defaults.QI_B, eps=defaults.QI_EPS,
          temperature=defaults.QI_TEMPERATURE)),
    (collect_object_descriptors,
     dict(kernel_size=defaults.DESCRIPTOR_POOL,
          min_depth=defaults.MIN_DEPTH, max_depth=defaults.MAX_DEPTH)),
    (select_objects,
     dict(min_depth=defaults.MIN_DEPTH, max_depth=defaults.MAX_DEPTH)),
    (pool_descriptor_map, dict(kernel_size=defaults.DESCRIPTOR_POOL)),
    (gather_pooled_at_cells, dict(kernel_size=defaults.DESCRIPTOR_POOL)),
])
def test_signature_defaults_are_the_constants(fn, expected):
    got = _defaults(fn)
    for name, value in expected.items():
        assert got[name] == value, (fn.__qualname__, name)


def test_the_values():
    # The paper's release (K, B, eps, T) and the wrapper's depth range.
    assert (defaults.FEATURE_LEVEL, defaults.DESCRIPTOR_POOL) == (0, 5)
    assert (defaults.MIN_DEPTH, defaults.MAX_DEPTH) == (2., 65.)
    assert (defaults.QI_K, defaults.QI_B, defaults.QI_EPS,
            defaults.QI_TEMPERATURE) == (1.5, 0.5, 10., 10.)
