"""Backbone helpers: mmdet3d's ``DLANet`` under the release's names and
its ImageNet initialisation (``init_cfg=dict(type='PretrainedDLA')``,
registered into mmdet3d's WEIGHT_INITIALIZERS)."""
from .dla_release import (DLA34_IMAGENET_URL, PretrainedDLAInit,
                          dla_key_from_release, dla_state_dict_from_release)

__all__ = [
    'DLA34_IMAGENET_URL', 'PretrainedDLAInit', 'dla_key_from_release',
    'dla_state_dict_from_release'
]
