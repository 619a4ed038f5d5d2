"""Losses registered into mmdet3d's MODELS."""
from .dimension_aware_l1_loss import DimensionAwareL1Loss
from .hierarchical_task_learning import (MONODLE_TASK_GRAPH,
                                         HierarchicalTaskLearning)
from .laplacian_aleatoric_uncertainty_loss import \
    LaplacianAleatoricUncertaintyLoss
from .multi_range_loss import MultiRangeDepthMetricLoss
from .multibin_heading_loss import MultiBinHeadingLoss
from .quasi_isometric_loss import QuasiIsometricLoss

__all__ = [
    'QuasiIsometricLoss', 'MultiRangeDepthMetricLoss',
    'LaplacianAleatoricUncertaintyLoss', 'DimensionAwareL1Loss',
    'MultiBinHeadingLoss', 'HierarchicalTaskLearning', 'MONODLE_TASK_GRAPH'
]
