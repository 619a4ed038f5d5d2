"""Synthetic KITTI-format renderer (work in progress)."""
__all__ = []
