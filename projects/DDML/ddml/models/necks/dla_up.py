"""MonoDLE's DLA-up neck (the neck of its release and of DDML's).

MonoDLE's release (github.com/xinzhuma/monodle, ``lib/backbones/dlaup.py``:
``DLAUp`` and ``IDAUp``, used by ``lib/models/centernet3d.py``; DDML's
release, mingyuShin/DDML-M3DOD, has the same files) fuses the DLA-34
levels of strides 4-32 into one stride-4 map with a cascade of iterative
deep aggregation (IDA) stages, deepest first. mmdet3d's ``DLANeck`` is
CenterNet's variant of that neck and differs: its IDA nodes *sum* the
upsampled map and the shallower one (the release concatenates them and
convolves 2C -> C), and it ends with an extra IDA-up over the intermediate
maps of strides 4-16. This module is the release's neck, written anew,
with the release's parameter names, so that a release state dict loads
into it unchanged (``neck.ida_{i}.{proj,up,node}_{k}.*``).

With the backbone levels ``x_s, ..., x_{n-1}`` (``s = start_level``,
channels ``C_s, ..., C_{n-1}``), stage ``i`` (``i = 0 .. n-s-2``) works on
the levels from ``j = n - 2 - i`` up, all of which it brings to channels
``C_j`` and stride of level ``j``: for ``k = 1, 2, ...``

``y_k = node_k(cat(y_{k-1}, up_k(proj_k(y_k))))``, ``y_0 = x_j``,

where ``proj_k`` and ``node_k`` are Conv3x3 + BN + ReLU and ``up_k`` is a
depthwise transposed convolution that doubles the resolution (initialised
to bilinear upsampling, trained). The last map of the last stage is the
output: ``C_s`` channels at the stride of level ``s``.
"""
import math
from typing import List, Sequence

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.models.necks.dla_neck import fill_up_weights
from mmdet3d.registry import MODELS
from mmdet3d.utils import ConfigType, OptConfigType, OptMultiConfig

__all__ = ['MonoDLEDLAUp']


class _IDAUp(nn.Module):
    """One IDA stage of the release's ``IDAUp`` (``dlaup.py``, lines 33-85).

    Args:
        in_channels (Sequence[int]): Channels of the maps it fuses,
            shallowest first; the first one is also the output width.
        up_factors (Sequence[int]): Upsampling factor of each map to the
            first one's resolution (the first entry is unused).
        out_channels (int): Channels of every output map.
        norm_cfg (dict): Norm layer of the convolutions.
        conv_cfg (dict, optional): Conv layer of the convolutions.
    """

    def __init__(self, in_channels: Sequence[int], up_factors: Sequence[int],
                 out_channels: int, norm_cfg: ConfigType,
                 conv_cfg: OptConfigType) -> None:
        super().__init__()
        self.num_inputs = len(in_channels)
        for k in range(1, self.num_inputs):
            factor = int(up_factors[k])
            self.add_module(
                f'proj_{k}',
                ConvModule(in_channels[k], out_channels, 3, padding=1,
                           bias=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg))
            self.add_module(
                f'up_{k}',
                nn.ConvTranspose2d(out_channels, out_channels, factor * 2,
                                   stride=factor, padding=factor // 2,
                                   output_padding=0, groups=out_channels,
                                   bias=False))
            self.add_module(
                f'node_{k}',
                ConvModule(out_channels * 2, out_channels, 3, padding=1,
                           bias=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg))

    def forward(self, layers: List[Tensor]) -> List[Tensor]:
        """Fuse ``layers`` in place, deeper into shallower.

        Args:
            layers (list[Tensor]): ``num_inputs`` maps; map ``k`` of shape
                (B, in_channels[k], H / f_k, W / f_k).

        Returns:
            list[Tensor]: The same list; map 0 unchanged, map ``k >= 1``
            replaced by its fusion with map ``k - 1``, shape
            (B, out_channels, H, W).
        """
        if len(layers) != self.num_inputs:
            raise ValueError(f'this IDA stage fuses {self.num_inputs} maps, '
                             f'got {len(layers)}')
        for k in range(1, self.num_inputs):
            up = getattr(self, f'up_{k}')(getattr(self, f'proj_{k}')(
                layers[k]))
            layers[k] = getattr(self, f'node_{k}')(
                torch.cat([layers[k - 1], up], 1))
        return layers


@MODELS.register_module()
class MonoDLEDLAUp(BaseModule):
    """The release's DLA-up neck of MonoDLE (``DLAUp`` of ``dlaup.py``).

    Args:
        in_channels (Sequence[int]): Channels of every backbone output, e.g.
            ``(16, 32, 64, 128, 256, 512)`` for mmdet3d's ``DLANet`` of
            depth 34.
        start_level (int): First backbone output the neck fuses; the output
            has its channels and stride. Defaults to 2 (stride 4, the
            release's ``downsample=4``).
        norm_cfg (dict): Norm layer of the convolutions. Defaults to BN (the
            release).
        conv_cfg (dict, optional): Conv layer of the convolutions. Defaults
            to None (``nn.Conv2d``).
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None: the release's initialisation (see
            :meth:`init_weights`).

    Shapes:
        Input: the backbone's outputs, a sequence of at least
        ``len(in_channels)`` maps, map ``l`` of shape
        (B, in_channels[l], H / 2^l, W / 2^l) (``H`` and ``W`` multiples of
        ``2^(len(in_channels) - 1)``).
        Output: a list with one map of shape
        (B, in_channels[start_level], H / 2^start_level,
        W / 2^start_level).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 start_level: int = 2,
                 norm_cfg: ConfigType = dict(type='BN'),
                 conv_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = [int(c) for c in in_channels]
        if not 0 <= start_level <= len(in_channels) - 2:
            raise ValueError(
                f'MonoDLEDLAUp.start_level must leave at least two backbone '
                f'levels to fuse: 0 <= start_level <= {len(in_channels) - 2}'
                f' for {len(in_channels)} in_channels, got {start_level}')
        self.in_channels = in_channels
        self.start_level = int(start_level)
        self.out_channels = in_channels[start_level]
        channels = list(in_channels[start_level:])
        scales = [2**i for i in range(len(channels))]
        # dlaup.py, DLAUp.__init__ (lines 146-156): stage i fuses the levels
        # from j = n - 2 - i up; after it they all have C_j and stride s_j.
        self.num_stages = len(channels) - 1
        for i in range(self.num_stages):
            j = len(channels) - 2 - i
            self.add_module(
                f'ida_{i}',
                _IDAUp(channels[j:], [s // scales[j] for s in scales[j:]],
                       channels[j], norm_cfg, conv_cfg))
            scales[j + 1:] = [scales[j]] * (len(scales) - j - 1)
            channels[j + 1:] = [channels[j]] * (len(channels) - j - 1)
        self._init_like_release()

    def _init_like_release(self) -> None:
        """The release's initialisation (``IDAUp.__init__``, dlaup.py
        lines 64-71, and ``fill_up_weights``, line 200): convolutions
        N(0, 2 / (k^2 C_out)), BN weight 1 and bias 0, transposed
        convolutions bilinear."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                fill_up_weights(m)
            elif isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0., math.sqrt(2. / n))
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1.)
                nn.init.constant_(m.bias, 0.)

    def init_weights(self) -> None:
        """The release's initialisation, or ``init_cfg`` when one is set."""
        if self.init_cfg is not None:
            super().init_weights()
        else:
            self._init_like_release()

    def forward(self, x: Sequence[Tensor]) -> List[Tensor]:
        """Fuse the backbone levels from ``start_level`` on.

        Args:
            x (Sequence[Tensor]): Backbone outputs (see the class's Shapes).

        Returns:
            list[Tensor]: One map, shape
            (B, in_channels[start_level], H / 2^start_level,
            W / 2^start_level).
        """
        if len(x) < len(self.in_channels):
            raise ValueError(
                f'MonoDLEDLAUp expects {len(self.in_channels)} backbone '
                f'outputs (in_channels={self.in_channels}), got {len(x)}')
        layers = list(x[self.start_level:len(self.in_channels)])
        # dlaup.py, DLAUp.forward (lines 158-164)
        for i in range(self.num_stages):
            first = len(layers) - 2 - i
            layers[first:] = getattr(self, f'ida_{i}')(layers[first:])
        return [layers[-1]]
