"""mmdet3d's ``MonoDet3DInferencer`` runs after ``import ddml``.

Without ``ddml.compat.mono_inferencer``, mmdet3d 1.4 looks every image up
as ``images['CAM2']`` whatever ``cam_type`` is passed
(open-mmlab/mmdetection3d #2868, #2881, #2981): an info whose camera is
``CAM_FRONT`` (Waymo, nuScenes) stops with ``KeyError: 'CAM2'``, which the
tests reproduce by calling mmdet3d's own methods (kept by the fix under
``__wrapped__``). With the fix the inferencer returns the boxes of ddml's
:func:`ddml.apis.inference_mono_image` for the same image and camera, for
an info with ``CAM_FRONT``, for a multi-camera info without ``cam_type``
(the camera holding the image), for an image given with its own
``cam2img``, and for ddml's ``DepthDiscriminativeDetector`` config (which
mmdet3d's ``_init_model`` cannot build).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.fileio import dump, load

import ddml  # noqa: F401  (applies the fix)
from ddml.compat import resolve_camera

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'demo'
PLAIN_CFG = DEMO / ('monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-'
                    'mono3d.py')
DDML_CFG = DEMO / \
    'ddml_monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py'


def test_resolve_camera():
    images = dict(
        CAM_FRONT=dict(img_path='a/front.png', cam2img=np.eye(3)),
        CAM_BACK=dict(img_path='b/back.png', cam2img=np.eye(3)),
        R0_rect=np.eye(4).tolist())
    assert resolve_camera(images, 'CAM_BACK', 'x/front.png') == 'CAM_BACK'
    assert resolve_camera(images, 'CAM2', '/data/back.png') == 'CAM_BACK'
    assert resolve_camera(dict(CAM_FRONT=images['CAM_FRONT']),
                          'CAM2') == 'CAM_FRONT'
    with pytest.raises(KeyError, match='CAM_FRONT, CAM_BACK'):
        resolve_camera(images, 'CAM2', 'other.png')


@pytest.fixture(scope='module')
def frames(tmp_path_factory):
    """Two rendered demo frames and info files keyed as Waymo's and
    nuScenes' cameras (no ``CAM2``)."""
    from ddml.data_tools.synthetic_kitti import (DEMO_LAYOUT,
                                                 make_demo_dataset)
    root = tmp_path_factory.mktemp('inferencer_frames')
    make_demo_dataset(root, 1, 1, seed=7, scale=0.25, workers=1,
                      progress=False, convert=True, layout=DEMO_LAYOUT)
    image_dir = root / 'training' / 'image_2'
    infos = load(str(root / 'kitti_infos_trainval.pkl'))
    cams = [info['images']['CAM2'] for info in infos['data_list']]
    front = dict(metainfo=infos['metainfo'],
                 data_list=[dict(sample_idx=1, images=dict(
                     CAM_FRONT=cams[1]))])
    dump(front, str(root / 'front.pkl'))
    # a camera-only info: no lidar2cam (mmdet3d requires one)
    del front['data_list'][0]['images']['CAM_FRONT']['lidar2cam']
    dump(front, str(root / 'front_no_lidar.pkl'))
    both = dict(metainfo=infos['metainfo'],
                data_list=[dict(sample_idx=0, images=dict(
                    CAM_FRONT=cams[1], CAM_BACK=cams[0]))])
    dump(both, str(root / 'two_cameras.pkl'))
    return dict(root=root,
                images=[image_dir / c['img_path'] for c in cams],
                cam2imgs=[np.array(c['cam2img']) for c in cams])


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """The ddml_ demo wrapper with random weights (boxes ahead of the
    camera) and its plain detector's export."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from ddml.models.detectors.depth_discriminative import \
        export_baseline_checkpoint
    from mmdet3d.registry import MODELS
    out = tmp_path_factory.mktemp('inferencer_ckpt')
    init_default_scope('mmdet3d')
    torch.manual_seed(1)
    model = MODELS.build(Config.fromfile(str(DDML_CFG)).model)
    model.init_weights()
    state = model.state_dict()
    state['detector.bbox_head.heatmap.2.bias'].fill_(0.0)
    state['detector.bbox_head.depth.2.bias'][0] = -2.7
    wrapper = dict(meta=dict(dataset_meta=dict(classes=['Car'])),
                   state_dict=state)
    torch.save(wrapper, str(out / 'ddml.pth'))
    torch.save(export_baseline_checkpoint(wrapper), str(out / 'plain.pth'))
    return dict(ddml=str(out / 'ddml.pth'), plain=str(out / 'plain.pth'))


@pytest.fixture(scope='module')
def inferencer(checkpoints):
    from mmdet3d.apis import MonoDet3DInferencer
    return MonoDet3DInferencer(str(PLAIN_CFG), checkpoints['plain'],
                               device='cpu')


def _boxes(result) -> np.ndarray:
    pred = result['predictions'][0]
    assert pred['box_type_3d'] == 'Camera'
    return np.asarray(pred['bboxes_3d'], dtype=np.float32).reshape(-1, 7)


def _expected(checkpoints, image, cam2img, config=PLAIN_CFG):
    """ddml's own inference on the image with its camera matrix."""
    from ddml.apis import inference_mono_image, init_model
    model = init_model(str(config), checkpoints['plain'])
    sample = inference_mono_image(model, str(image), cam2img)
    return sample.pred_instances_3d.bboxes_3d.tensor.numpy()


def test_upstream_inferencer_raises_keyerror_cam2(inferencer, frames,
                                                  monkeypatch):
    """mmdet3d's own ``_dispatch_kwargs`` and ``_inputs_to_list``."""
    from mmdet3d.apis import MonoDet3DInferencer
    for name in ('_dispatch_kwargs', '_inputs_to_list'):
        fixed = getattr(MonoDet3DInferencer, name)
        assert fixed._ddml_fixed
        monkeypatch.setattr(MonoDet3DInferencer, name, fixed.__wrapped__)
    infos = str(frames['root'] / 'front.pkl')
    # cam_type is dropped on the way: 'CAM2' is looked up all the same
    with pytest.raises(KeyError, match='CAM2'):
        inferencer(dict(img=str(frames['images'][1]), infos=infos),
                   cam_type='CAM_FRONT')
    # as mmdet3d's demo/mono_det_demo.py calls it (without cam_type)
    with pytest.raises(KeyError, match='CAM2'):
        inferencer(dict(img=str(frames['images'][1]), infos=infos))


def test_fixed_inferencer_predicts(inferencer, frames, checkpoints,
                                   tmp_path):
    image, cam2img = frames['images'][1], frames['cam2imgs'][1]
    expected = _expected(checkpoints, image, cam2img)
    assert len(expected) > 0
    out_dir = tmp_path / 'out'
    result = inferencer(
        dict(img=str(image), infos=str(frames['root'] / 'front.pkl')),
        cam_type='CAM_FRONT', out_dir=str(out_dir), pred_score_thr=0.0)
    assert np.array_equal(_boxes(result), expected)
    name = Path(image).name
    assert (out_dir / 'vis_camera' / 'CAM_FRONT' / name).is_file()
    assert (out_dir / 'preds' / (Path(image).stem + '.json')).is_file()

    # an info without lidar2cam, and no cam_type (the demo script's call)
    result = inferencer(
        dict(img=str(image),
             infos=str(frames['root'] / 'front_no_lidar.pkl')))
    assert np.array_equal(_boxes(result), expected)

    # a multi-camera info: the camera that holds the image
    result = inferencer(
        dict(img=str(image), infos=str(frames['root'] / 'two_cameras.pkl')))
    assert np.array_equal(_boxes(result), expected)

    # one's own camera matrix, no info file (3x3 intrinsics)
    own = np.asarray(cam2img)[:3, :3]
    result = inferencer(dict(img=str(image), cam2img=own))
    assert np.array_equal(_boxes(result),
                          _expected(checkpoints, image, own))


def test_ddml_wrapper_config(frames, checkpoints):
    """mmdet3d's ``_init_model`` cannot build the wrapper (it sets
    ``train_cfg``); the fixed one builds it and loads its checkpoint, and
    the wrapper predicts as its detector."""
    from mmengine.config import Config

    from mmdet3d.apis import MonoDet3DInferencer
    upstream = MonoDet3DInferencer._init_model.__wrapped__
    with pytest.raises(TypeError, match='train_cfg'):
        upstream(object.__new__(MonoDet3DInferencer),
                 Config.fromfile(str(DDML_CFG)), checkpoints['ddml'], 'cpu')
    image, cam2img = frames['images'][0], frames['cam2imgs'][0]
    for config, ckpt in ((DDML_CFG, checkpoints['ddml']),
                         (PLAIN_CFG, checkpoints['ddml'])):
        inferencer = MonoDet3DInferencer(str(config), ckpt, device='cpu')
        assert inferencer.model.dataset_meta['classes'] == ['Car']
        result = inferencer(dict(img=str(image), cam2img=cam2img))
        assert np.array_equal(_boxes(result),
                              _expected(checkpoints, image, cam2img))
