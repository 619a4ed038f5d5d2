from .depth_discriminative import DepthDiscriminativeDetector
from .monodle import MonoDLE

__all__ = ['DepthDiscriminativeDetector', 'MonoDLE']
