"""The method's defaults, defined once.

Every module of the method (the wrapper, the object descriptors, the
object depth map head, the quasi-isometric loss) and the analysis tools
import their defaults from here; a config overrides them per option.
The quasi-isometric constants are those of the authors' release of DDML
(Choi, Shin, Im, NeurIPS 2023).
"""
__all__ = [
    'FEATURE_LEVEL', 'DESCRIPTOR_POOL', 'MIN_DEPTH', 'MAX_DEPTH', 'QI_K',
    'QI_B', 'QI_EPS', 'QI_TEMPERATURE'
]

#: Index into ``extract_feat``'s outputs of the map the method reads (the
#: first neck output: stride 4 for SMOKE and PGD-KITTI, 8 for FCOS3D).
FEATURE_LEVEL: int = 0
#: Odd size ``k`` of the ``k x k`` average pooling of object descriptors.
DESCRIPTOR_POOL: int = 5
#: Depth range in metres (inclusive) of the objects that get a descriptor
#: and are painted into the object depth map.
MIN_DEPTH: float = 2.0
MAX_DEPTH: float = 65.0
#: Quasi-isometry constants: ``d / K - B <= e <= K d + B`` for object pairs
#: with ``0 < d <= eps`` (``d`` in metres, ``e`` in descriptor units).
QI_K: float = 1.5
QI_B: float = 0.5
QI_EPS: float = 10.0
#: Temperature of the quasi-isometric loss's ``'official'`` form.
QI_TEMPERATURE: float = 10.0
