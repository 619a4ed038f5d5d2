from .multi_range_loss import (MultiRangeDepthMetricLoss,
                               collect_shifted_pairs)
from .quasi_isometric_loss import QuasiIsometricLoss

__all__ = [
    'QuasiIsometricLoss', 'MultiRangeDepthMetricLoss', 'collect_shifted_pairs'
]
