"""Inference on one's own images, in the shape of ``mmdet3d.apis``:
:func:`init_model` (a config and its checkpoint, ddml's wrapper included),
:func:`inference_mono_image` (one image and its camera matrix through the
config's test pipeline) and :func:`infer_images` (pictures and JSON), which
``tools/infer.py`` (:mod:`ddml.engine.infer`) runs.
"""
from .inference import (BOX_CONVENTION, WRAPPER_TYPE, InferenceInputError,
                        cam2img_from_calib, cam2img_from_intrinsics,
                        check_checkpoint_path, check_config_path,
                        check_device, check_image, check_out_dir,
                        draw_mono_3d_predictions, infer_images,
                        inference_mono_image, init_model, load_config,
                        mono_data_info, mono_test_pipeline, output_paths,
                        predictions_to_dict, quiet_dependencies, read_image)

__all__ = [
    'InferenceInputError', 'WRAPPER_TYPE', 'BOX_CONVENTION',
    'quiet_dependencies', 'check_config_path', 'check_out_dir', 'load_config',
    'check_checkpoint_path', 'init_model', 'check_device',
    'cam2img_from_intrinsics', 'cam2img_from_calib', 'mono_test_pipeline',
    'mono_data_info', 'check_image', 'read_image', 'inference_mono_image',
    'predictions_to_dict', 'draw_mono_3d_predictions', 'output_paths',
    'infer_images'
]
