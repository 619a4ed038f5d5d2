"""Analysis of trained detectors: descriptor statistics, figures, the demo
report and the efficacy benchmark (used by ``tools/run_demo.py``,
``tools/analyze_descriptors.py`` and ``tools/benchmark_efficacy.py``).

Nothing here is registered; the numpy-only parts import without torch.
"""
from .demo_report import (box_iou_2d, depth_errors, format_table,
                          match_detections, read_scalars)
from .descriptor_analysis import pair_distances, pair_statistics, pca_2d

__all__ = [
    'box_iou_2d', 'depth_errors', 'format_table', 'match_detections',
    'read_scalars', 'pair_distances', 'pair_statistics', 'pca_2d'
]
