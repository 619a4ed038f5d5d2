"""Necks registered into mmdet3d's MODELS."""
from .dla_up import MonoDLEDLAUp

__all__ = ['MonoDLEDLAUp']
