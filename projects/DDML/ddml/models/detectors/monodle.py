"""MonoDLE as an mmdet3d single-stage monocular detector."""
from mmdet3d.models.detectors.single_stage_mono3d import \
    SingleStageMono3DDetector
from mmdet3d.registry import MODELS
from mmdet3d.structures.det3d_data_sample import SampleList

__all__ = ['MonoDLE']


@MODELS.register_module()
class MonoDLE(SingleStageMono3DDetector):
    """MonoDLE (Ma et al., "Delving into Localization Errors for Monocular
    3D Object Detection", CVPR 2021, arXiv:2103.16237).

    A backbone and neck (DLA-34 and DLA-up in the paper: mmdet3d's
    ``DLANet`` and ``DLANeck``) followed by :class:`MonoDLEHead`. Training
    is mmdet's single-stage ``loss`` (``bbox_head.loss(extract_feat(x),
    data_samples)``), so :class:`DepthDiscriminativeDetector` can wrap it
    unchanged. ``predict`` also returns the regressed 2D boxes as
    ``pred_instances``, index-aligned with ``pred_instances_3d`` (unless
    the head's ``test_cfg.pred_2d`` is False): mmdet3d's ``KittiMetric``
    then reports, besides the ``pred_instances_3d`` figures (whose 2D box
    is the projected 3D box), ``pred_instances`` 2D AP of the regressed
    boxes; ddml's ``KittiMono3DMetric(bbox2d_source='regressed')`` writes
    the regressed box with each 3D result, as MonoDLE's release writes its
    KITTI result files.

    Args:
        backbone (dict): Backbone config.
        neck (dict): Neck config.
        bbox_head (dict): :class:`MonoDLEHead` config.
        train_cfg (dict, optional): Passed to the head.
        test_cfg (dict, optional): Passed to the head (``topk``,
            ``local_maximum_kernel``, ``score_thr``, ``pred_2d``).
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def predict(self,
                batch_inputs_dict: dict,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """3D (and 2D) detections of a batch.

        Args:
            batch_inputs_dict (dict): ``imgs`` of shape (B, 3, H, W).
            batch_data_samples (list[:obj:`Det3DDataSample`]): Samples with
                the image metas.
            rescale (bool): Unused; boxes are in the original image.

        Returns:
            list[:obj:`Det3DDataSample`]: The samples with
            ``pred_instances_3d`` (``bboxes_3d``, ``scores_3d``,
            ``labels_3d``) and ``pred_instances`` (``bboxes``, ``scores``,
            ``labels``; empty without 2D predictions).
        """
        feats = self.extract_feat(batch_inputs_dict)
        results_3d, results_2d = self.bbox_head.predict(
            feats, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_3d,
                                           results_2d)
