from .depth_discriminative import DepthDiscriminativeDetector

__all__ = ['DepthDiscriminativeDetector']
