"""mmdet3d's ``DLANet`` (depth 34) under the names of MonoDLE's release.

MonoDLE's release builds DLA-34 with its own ``lib/backbones/dla.py`` (the
ucbdrive/dla code that also wrote the ImageNet checkpoint
``dla34-ba72cf86.pth``, which the release loads strictly,
``DLA.load_pretrained_model``, lines 298-310). mmdet3d's ``DLANet(depth=34)``
is the same network -- the same layers in the same order, the same
channels, strides and forward (the tests compare the two on one input) --
with three norm layers renamed:

=================================  ====================================
release / ImageNet checkpoint       mmdet3d ``DLANet``
=================================  ====================================
``...tree1.bn1.*``, ``...bn2.*``    ``...tree1.norm1.*``, ``...norm2.*``
``...root.bn.*``                    ``...root.norm.*``
``fc.*`` (ImageNet classifier)      (none: DLANet has no classifier)
=================================  ====================================

Every other key (``base_layer.*``, ``level0.*``, ``level1.*``,
``...project.*``, convolutions) is the same.

mmengine's ``Pretrained`` initialisation loads with ``strict=False``, so
mmdet3d's ``DLANet`` given the ImageNet checkpoint that way keeps the
initial values of every renamed BN layer (weights, biases and running
statistics of all the tree blocks and roots), with only a logged warning
about the unmatched keys. :class:`PretrainedDLAInit`
(``init_cfg=dict(type='PretrainedDLA', checkpoint=...)``) renames the keys
first and loads strictly.
"""
import re
from collections import OrderedDict
from typing import List, Mapping, Optional, Tuple

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from torch import Tensor, nn

from mmdet3d.registry import WEIGHT_INITIALIZERS

__all__ = [
    'DLA34_IMAGENET_URL', 'dla_key_from_release',
    'dla_state_dict_from_release', 'PretrainedDLAInit'
]

#: The ImageNet DLA-34 both releases load (``dla.py``, ``get_model_url``).
DLA34_IMAGENET_URL = 'http://dl.yf.io/dla/models/imagenet/dla34-ba72cf86.pth'

_BLOCK_NORM = re.compile(r'(^|\.)bn([12])\.')
_ROOT_NORM = re.compile(r'(^|\.)root\.bn\.')


def dla_key_from_release(key: str) -> Optional[str]:
    """The ``DLANet`` key of a key of the release's DLA (or None).

    Args:
        key (str): A key of the release's / ImageNet DLA-34 state dict,
            relative to the backbone (e.g. ``level2.tree1.bn1.weight``).

    Returns:
        str or None: The key in mmdet3d's ``DLANet`` (e.g.
        ``level2.tree1.norm1.weight``); None for the ImageNet classifier
        (``fc.*``), which ``DLANet`` does not have.
    """
    if key.startswith('fc.'):
        return None
    key = _BLOCK_NORM.sub(r'\1norm\2.', key)
    return _ROOT_NORM.sub(r'\1root.norm.', key)


def dla_state_dict_from_release(
        state_dict: Mapping[str, Tensor]
) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """Rename a release / ImageNet DLA-34 state dict to ``DLANet``'s keys.

    Args:
        state_dict (Mapping[str, Tensor]): Keys relative to the backbone.

    Returns:
        tuple[OrderedDict, list[str]]: The renamed state dict (same tensors)
        and the keys left out (the classifier ``fc.*``).
    """
    renamed: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped = []
    for key, value in state_dict.items():
        new = dla_key_from_release(key)
        if new is None:
            dropped.append(key)
        else:
            renamed[new] = value
    return renamed, dropped


@WEIGHT_INITIALIZERS.register_module(name='PretrainedDLA')
class PretrainedDLAInit(PretrainedInit):
    """Load an ImageNet (or release) DLA-34 checkpoint into ``DLANet``.

    Like mmengine's ``Pretrained`` but renames the release's keys
    (:func:`dla_key_from_release`), leaves out the classifier and loads
    *strictly*, so that no layer silently keeps its initial values. Use as
    ``backbone=dict(type='DLANet', depth=34, ..., init_cfg=dict(
    type='PretrainedDLA', checkpoint=DLA34_IMAGENET_URL))``.

    Args:
        checkpoint (str): Path or URL of the checkpoint: a bare state dict
            (as ``dla34-ba72cf86.pth``) or a dict with ``state_dict``.
        prefix (str, optional): Keep only the keys under this prefix (e.g.
            ``'backbone.'`` of a whole release model) and strip it.
            Defaults to None.
        map_location (str): Where to map the tensors. Defaults to 'cpu'.
    """

    def __call__(self, module: nn.Module) -> None:
        """Load the renamed checkpoint into ``module`` (a ``DLANet``).

        Args:
            module (nn.Module): The backbone.

        Raises:
            RuntimeError: When the renamed keys do not match ``module``'s.
        """
        from mmengine.runner.checkpoint import (_load_checkpoint,
                                                load_state_dict)
        checkpoint = _load_checkpoint(
            self.checkpoint, map_location=self.map_location, logger='current')
        state = checkpoint.get('state_dict', checkpoint) \
            if isinstance(checkpoint, dict) else checkpoint
        if not isinstance(state, Mapping):
            raise TypeError(f'{self.checkpoint} holds no state dict')
        state = OrderedDict(state)
        if state and all(k.startswith('module.') for k in state):
            state = OrderedDict((k[len('module.'):], v)
                                for k, v in state.items())
        if self.prefix is not None:
            state = OrderedDict((k[len(self.prefix):], v)
                                for k, v in state.items()
                                if k.startswith(self.prefix))
        renamed, dropped = dla_state_dict_from_release(state)
        print_log(
            f'load DLA-34 from {self.checkpoint} (release names renamed to '
            f"DLANet's, left out: {dropped or 'nothing'})",
            logger='current')
        load_state_dict(module, renamed, strict=True, logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())
