"""Dataset pipeline parts used by the configs (``ddml.datasets.transforms``).
"""
from . import transforms

__all__ = ['transforms']
