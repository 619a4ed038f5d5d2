"""mmdet3d's ``KittiMetric`` with the 2D box of each 3D result chosen.

KITTI's evaluation reads a 2D box with every detection, and not only for
the 2D AP: a detection whose 2D box is lower than the difficulty's minimum
height (40 / 25 / 25 px) is ignored, and one whose 2D box overlaps a
DontCare region is ignored too, in every figure (2D, BEV, 3D, AOS;
``clean_data`` and ``compute_statistics_jit`` of
``mmdet3d/evaluation/functional/kitti_utils/eval.py``). mmdet3d's
``KittiMetric`` writes the projection of the predicted 3D box there
(``convert_valid_bboxes``); MonoDLE's and DDML's releases write the 2D box
their head regresses (``lib/helpers/decode_helper.py:24-29``, written to
the result files by ``lib/helpers/tester_helper.py:106-113``). So the same
detections get different AP3D from the two. :class:`KittiMono3DMetric`
with ``bbox2d_source='regressed'`` writes the regressed box instead, so that
its figures are comparable with the releases'.
"""
from typing import Sequence

import numpy as np
import torch

from mmdet3d.evaluation.metrics import KittiMetric
from mmdet3d.registry import METRICS

__all__ = ['KittiMono3DMetric', 'BBOX2D_SOURCES']

#: What :class:`KittiMono3DMetric` can write as each 3D result's 2D box.
BBOX2D_SOURCES = ('projected', 'regressed')
#: Where :meth:`KittiMono3DMetric.process` stores the regressed 2D boxes in
#: each stored 3D result.
_REGRESSED_KEY = 'bboxes_2d'


@METRICS.register_module()
class KittiMono3DMetric(KittiMetric):
    """``KittiMetric`` that can evaluate 3D results with their regressed 2D
    box.

    Which 2D box each reported figure uses:

    * ``pred_instances_3d/KITTI/*`` (3D, BEV, 2D AP and AOS of the 3D
      results): the 2D box written with each 3D result, i.e. the projection
      of the predicted 3D box clipped to the image (``'projected'``,
      mmdet3d's ``KittiMetric``) or the detector's regressed 2D box clipped
      to the image (``'regressed'``, as MonoDLE's release). Besides the 2D
      AP and AOS, this box decides which detections KITTI's minimum height
      and DontCare rules ignore in the 3D and BEV figures too.
    * ``pred_instances/KITTI/*`` (2D AP of the 2D results, unchanged): the
      regressed 2D boxes with their own scores.

    With ``'regressed'`` the 3D results keep mmdet3d's selection (results
    whose projected box misses the image are dropped, as in
    ``KittiMetric``), class, score, 3D box and ``alpha = rotation_y -
    atan2(x, z)``; only their 2D box changes.

    Args:
        bbox2d_source (str): ``'projected'`` (mmdet3d's behaviour) or
            ``'regressed'``: the 2D result of the same index
            (``pred_instances.bboxes``, original image pixels), which the
            detector must return index-aligned with its 3D results, as
            ``MonoDLEHead`` does with ``test_cfg.pred_2d=True``. Defaults to
            'projected'.
        *args, **kwargs: ``KittiMetric``'s arguments (``ann_file``,
            ``metric``, ``pklfile_prefix``, ``submission_prefix``, ...).
    """

    def __init__(self, *args, bbox2d_source: str = 'projected',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if bbox2d_source not in BBOX2D_SOURCES:
            raise ValueError(f'KittiMono3DMetric.bbox2d_source must be one '
                             f'of {BBOX2D_SOURCES}, got {bbox2d_source!r}')
        self.bbox2d_source = bbox2d_source

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """``KittiMetric.process``; with ``'regressed'`` each stored 3D
        result also keeps the regressed 2D boxes.

        Args:
            data_batch (dict): A batch of data from the dataloader.
            data_samples (Sequence[dict]): The model's outputs
                (``pred_instances_3d``, ``pred_instances``, ``sample_idx``).

        Raises:
            ValueError: With ``'regressed'``, when a sample's 2D results are
                missing or not index-aligned with its 3D results.
        """
        start = len(self.results)
        super().process(data_batch, data_samples)
        if self.bbox2d_source == 'projected':
            return
        for result in self.results[start:]:
            pred_3d, pred_2d = result['pred_instances_3d'], \
                result['pred_instances']
            labels_3d = torch.as_tensor(pred_3d['labels_3d'])
            boxes = pred_2d.get('bboxes', None) if pred_2d else None
            labels_2d = pred_2d.get('labels', None) if pred_2d else None
            if boxes is None or labels_2d is None or \
                    len(boxes) != len(labels_3d) or \
                    not torch.equal(torch.as_tensor(labels_2d).long(),
                                    labels_3d.long()):
                found = 'none' if boxes is None else f'{len(boxes)}'
                raise ValueError(
                    "KittiMono3DMetric(bbox2d_source='regressed') writes "
                    "each 3D result's regressed 2D box, read from the 2D "
                    'result of the same index (pred_instances.bboxes and '
                    f"labels), but sample {result['sample_idx']} has "
                    f'{len(labels_3d)} 3D results and {found} 2D boxes or '
                    'other labels. Use a detector that returns them '
                    'index-aligned (MonoDLEHead with test_cfg.pred_2d=True) '
                    "or bbox2d_source='projected'")
            pred_3d[_REGRESSED_KEY] = torch.as_tensor(boxes).reshape(-1, 4)

    def convert_valid_bboxes(self, box_dict: dict, info: dict) -> dict:
        """``KittiMetric.convert_valid_bboxes``, with the regressed 2D box
        of every kept result under ``'regressed'``.

        mmdet3d's selection of the valid results is reused as it is: it is
        run with the result indices in place of the scores, which it only
        filters, and so returns which results it kept.

        Args:
            box_dict (dict): One sample's 3D results (``bboxes_3d``,
                ``scores_3d``, ``labels_3d``; and ``bboxes_2d`` under
                ``'regressed'``).
            info (dict): The sample's data info.

        Returns:
            dict: As ``KittiMetric.convert_valid_bboxes``; ``bbox`` (K, 4)
            holds the regressed boxes under ``'regressed'``.
        """
        if self.bbox2d_source == 'projected' or \
                len(box_dict['bboxes_3d']) == 0:
            return super().convert_valid_bboxes(box_dict, info)
        scores = torch.as_tensor(box_dict['scores_3d'])
        boxes_2d = torch.as_tensor(box_dict[_REGRESSED_KEY])
        probe = dict(box_dict)
        probe['scores_3d'] = torch.arange(len(scores), dtype=torch.float64)
        valid = super().convert_valid_bboxes(probe, info)
        kept = np.asarray(valid['scores']).astype(np.int64)
        valid['scores'] = scores[kept].numpy()
        valid['bbox'] = boxes_2d[kept].numpy()
        return valid
