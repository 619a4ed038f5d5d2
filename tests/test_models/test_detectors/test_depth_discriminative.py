"""DepthDiscriminativeDetector around SMOKE, FCOS3D and PGD.

Real mmdet3d configs (``mmdet3d::`` paths) with shrunk inputs (64x192) and
no pretrained weights; data samples are built by hand.
"""
import copy
import os.path as osp
import runpy
import sys

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.config import Config  # noqa: E402
from mmengine.model import BaseDataPreprocessor  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from mmengine.utils import get_installed_path  # noqa: E402

from mmdet3d.registry import MODELS  # noqa: E402
from mmdet3d.utils import register_all_modules  # noqa: E402

import ddml  # noqa: E402,F401  (registration)
from ddml.models.detectors import DepthDiscriminativeDetector  # noqa: E402
from ddml.models.detectors.depth_discriminative import (  # noqa: E402
    export_baseline_checkpoint)
from ddml.testing import make_samples as _make_samples  # noqa: E402

register_all_modules(init_default_scope=True)

SMOKE_CFG = 'mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py'
PGD_CFG = 'mmdet3d::pgd/pgd_r101-caffe_fpn_head-gn_4xb3-4x_kitti-mono3d.py'
FCOS_CFG = ('mmdet3d::fcos3d/'
            'fcos3d_r101-caffe-dcn_fpn_head-gn_8xb2-1x_nus-mono3d.py')
H, W = 64, 192  # KITTI's 384x1280 scaled by ~1/6; 2 CPU cores are shared
CAM2IMG = [[112., 0., 96., 0.], [0., 112., 32., 0.], [0., 0., 1., 0.],
           [0., 0., 0., 1.]]
AUX_KEYS = {'loss_qi', 'loss_obj_depth', 'loss_metric', 'loss_dense_metric'}

# (x, y_bottom, z, l, h, w, yaw, label) in camera coordinates
OBJECTS = [
    [(-3., 1.6, 15., 3.9, 1.6, 1.6, 0.3, 2), (2., 1.6, 25., 3.9, 1.5, 1.6,
                                              -0.5, 2),
     (0.5, 1.7, 8., 0.8, 1.7, 0.6, 1.2, 0)],
    [(4., 1.6, 40., 1.8, 1.7, 0.6, 0.0, 1), (-1., 1.6, 12., 4.0, 1.5, 1.7,
                                             1.5, 2)],
]


def config_path(path: str) -> str:
    """Resolve ``mmdet3d::rel/path.py`` to the installed config file."""
    package, rel = path.split('::')
    return osp.join(get_installed_path(package), '.mim', 'configs', rel)


def model_cfg(path: str) -> Config:
    """The config's model, pretrained loading off, ResNet-50 for speed."""
    cfg = Config.fromfile(config_path(path)).model
    cfg.backbone.init_cfg = None
    if cfg.backbone.type == 'mmdet.ResNet':
        cfg.backbone.depth = 50  # same stage channels as ResNet-101
    return cfg


def make_samples(objects=OBJECTS, code_size=7, stride=4):
    """Det3DDataSamples with 3D boxes, projected centres and 2D boxes."""
    return _make_samples(objects, CAM2IMG, (H, W), code_size=code_size,
                         stride=stride)


def make_inputs(batch: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return dict(imgs=torch.randn(batch, 3, H, W, generator=gen))


def build_pair(path, **wrapper_kwargs):
    """A plain detector and a wrapper holding an identical copy of it."""
    torch.manual_seed(0)
    # PyTorch's default init, not init_weights(): the focal-loss prior on
    # the class bias would keep every score under SMOKE's 0.25 threshold
    # and make "identical predictions" trivially true.
    plain = MODELS.build(model_cfg(path))
    wrapper = MODELS.build(
        dict(
            type='DepthDiscriminativeDetector',
            detector=model_cfg(path),
            **wrapper_kwargs))
    wrapper.detector.load_state_dict(plain.state_dict(), strict=True)
    return plain, wrapper


def forbid_aux(wrapper):
    """Make any auxiliary module fail if it runs; returns hook handles."""

    def boom(*args, **kwargs):
        raise AssertionError('an auxiliary module ran at inference')

    handles = []
    for name in ('depth_map_head', 'qi_loss', 'metric_loss',
                 'dense_metric_loss'):
        module = getattr(wrapper, name)
        if module is not None:
            handles.append(module.register_forward_pre_hook(boom))
    return handles


def assert_same_predictions(preds_a, preds_b):
    for a, b in zip(preds_a, preds_b, strict=True):
        for key in ('bboxes_3d', 'scores_3d', 'labels_3d'):
            va, vb = a.pred_instances_3d[key], b.pred_instances_3d[key]
            va = getattr(va, 'tensor', va)
            vb = getattr(vb, 'tensor', vb)
            assert torch.equal(va, vb), key


AUX_CFG = dict(
    qi_loss=dict(type='QuasiIsometricLoss'),
    depth_map_head=dict(type='ObjectDepthMapHead'),
    metric_loss=dict(type='MultiRangeDepthMetricLoss'),
    dense_metric_loss=dict(
        type='MultiRangeDepthMetricLoss', unit_size=1, shifts=((-2, -1), )))


@pytest.fixture(scope='module')
def smoke_pair():
    return build_pair(SMOKE_CFG, **AUX_CFG)


def _loss_check(plain, wrapper, samples, inputs):
    plain.train()
    wrapper.train()
    torch.manual_seed(1)
    ref = plain.loss(inputs, copy.deepcopy(samples))
    torch.manual_seed(1)
    out = wrapper.loss(inputs, copy.deepcopy(samples))
    assert set(ref) <= set(out)
    for key, value in ref.items():
        assert torch.equal(torch.as_tensor(out[key]),
                           torch.as_tensor(value)), key
    new_keys = set(out) - set(ref)
    assert new_keys == AUX_KEYS
    for key in new_keys:
        assert out[key].dtype == torch.float32
        assert torch.isfinite(out[key]) and out[key].requires_grad, key
    return out


def test_smoke_predict_and_tensor_modes_are_the_plain_detector(smoke_pair):
    plain, wrapper = smoke_pair
    plain.eval()
    wrapper.eval()
    handles = forbid_aux(wrapper)
    inputs = make_inputs(2)
    with torch.no_grad():
        ref = plain(inputs, make_samples(), mode='predict')
        out = wrapper(inputs, make_samples(), mode='predict')
        assert sum(len(p.pred_instances_3d.scores_3d) for p in ref) > 0
        assert_same_predictions(ref, out)
        ref_t = plain(dict(imgs=inputs['imgs'][:1]), mode='tensor')
        out_t = wrapper(dict(imgs=inputs['imgs'][:1]), mode='tensor')
    for a, b in zip(ref_t, out_t, strict=True):
        for ta, tb in zip(a, b, strict=True):
            assert torch.equal(ta, tb)
    # full test_step, through the shared data preprocessor
    assert wrapper.data_preprocessor is wrapper.detector.data_preprocessor
    gen = torch.Generator().manual_seed(3)
    data = dict(
        inputs=dict(img=[
            torch.randint(0, 255, (3, H, W), generator=gen, dtype=torch.uint8)
        ]),
        data_samples=make_samples(OBJECTS[:1]))
    with torch.no_grad():
        assert_same_predictions(
            plain.test_step(copy.deepcopy(data)),
            wrapper.test_step(copy.deepcopy(data)))
    for handle in handles:
        handle.remove()


def test_smoke_loss_is_baseline_plus_aux(smoke_pair):
    plain, wrapper = smoke_pair
    # the third image has no object
    out = _loss_check(plain, wrapper, make_samples(OBJECTS + [[]]),
                      make_inputs(3))
    assert out['loss_obj_depth'] > 0 and out['loss_metric'] > 0
    sum(out.values()).backward()
    assert wrapper.depth_map_head.conv.weight.grad is not None
    assert next(wrapper.detector.neck.parameters()).grad is not None


def test_export_round_trip(smoke_pair, tmp_path, monkeypatch):
    plain, wrapper = smoke_pair
    ckpt = dict(
        meta=dict(epoch=3, note='kept'),
        state_dict=wrapper.state_dict(),
        optimizer=dict(state={}, param_groups=[]),
        message_hub=dict(x=1))
    exported = export_baseline_checkpoint(ckpt)
    assert set(exported) == {'meta', 'state_dict'}
    assert exported['meta']['epoch'] == 3
    assert not any(k.startswith(('detector.', 'depth_map_head'))
                   for k in exported['state_dict'])
    assert 'depth_map_head' in exported['meta']['ddml_export'][
        'dropped_modules']
    # the command-line tool on a saved wrapper checkpoint
    wrapper_path, path = tmp_path / 'ddml.pth', tmp_path / 'baseline.pth'
    torch.save(ckpt, wrapper_path)
    tool = osp.join(osp.dirname(__file__), '..', '..', '..', 'tools',
                    'export_baseline.py')
    monkeypatch.setattr(sys, 'argv',
                        ['export_baseline.py',
                         str(wrapper_path),
                         str(path)])
    runpy.run_path(tool, run_name='__main__')
    assert set(torch.load(path, weights_only=False)) == {'meta', 'state_dict'}
    torch.manual_seed(123)  # different random init: weights must come in
    fresh = MODELS.build(model_cfg(SMOKE_CFG))
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    n_params = sum(p.numel() for p in fresh.parameters())
    assert n_params == sum(p.numel() for p in plain.parameters())
    fresh.eval()
    wrapper.eval()
    inputs = make_inputs(1, seed=5)
    with torch.no_grad():
        assert_same_predictions(
            fresh(inputs, make_samples(OBJECTS[:1]), mode='predict'),
            wrapper(inputs, make_samples(OBJECTS[:1]), mode='predict'))
    with pytest.raises(ValueError, match='detector'):
        export_baseline_checkpoint(dict(state_dict=plain.state_dict()))


@pytest.mark.parametrize('path', [PGD_CFG, FCOS_CFG], ids=['pgd', 'fcos3d'])
def test_fcos_family_predict_and_loss(path):
    plain, wrapper = build_pair(path, **AUX_CFG)
    code_size = plain.bbox_head.bbox_code_size
    samples = make_samples(code_size=code_size)
    inputs = make_inputs(2, seed=2)
    plain.eval()
    wrapper.eval()
    handles = forbid_aux(wrapper)
    with torch.no_grad():
        ref = plain(inputs, copy.deepcopy(samples), mode='predict')
        assert sum(len(p.pred_instances_3d.scores_3d) for p in ref) > 0
        assert_same_predictions(
            ref, wrapper(inputs, copy.deepcopy(samples), mode='predict'))
    for handle in handles:
        handle.remove()
    if path == PGD_CFG:
        out = _loss_check(plain, wrapper, samples, inputs)
        # PGD-KITTI reads the stride-4 map; FCOS3D's first level is stride 8
        assert torch.isfinite(sum(out.values()))


# ----------------------------------------------------------------------
# fast checks on a tiny stand-in detector
# ----------------------------------------------------------------------
class TinyHead(nn.Module):
    in_channels = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 1, 1)

    def loss(self, feats, data_samples):
        return dict(loss_cls=self.conv(feats[0]).pow(2).mean())


class TinyDetector(nn.Module):
    """extract_feat -> one stride-4 map with 6 channels."""

    def __init__(self):
        super().__init__()
        self.data_preprocessor = BaseDataPreprocessor()
        self.backbone = nn.Conv2d(3, 6, 4, stride=4)
        self.bbox_head = TinyHead()

    def extract_feat(self, inputs):
        return (self.backbone(inputs['imgs']), )

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.extract_feat(inputs)


def tiny_wrapper(**kwargs):
    cfg = dict(AUX_CFG)
    cfg.update(kwargs)
    return DepthDiscriminativeDetector(detector=TinyDetector(), **cfg)


def tiny_losses(wrapper, objects, autocast=False):
    samples = make_samples(objects)
    inputs = make_inputs(len(objects))
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        losses = wrapper.loss(inputs, samples)
    for key in AUX_KEYS & set(losses):
        assert losses[key].dtype == torch.float32, key
        assert torch.isfinite(losses[key]), (key, losses[key])
        assert losses[key].requires_grad, key
    sum(losses.values()).backward()
    for p in wrapper.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()
    return losses


CAR = (0., 1.6, 20., 3.9, 1.6, 1.6, 0., 2)


def _moved(obj, **changes):
    names = ('x', 'y', 'z', 'l', 'h', 'w', 'yaw', 'label')
    values = dict(zip(names, obj, strict=True))
    values.update(changes)
    return tuple(values[n] for n in names)


@pytest.mark.parametrize(
    'objects',
    [
        [[], []],  # no object in the whole batch
        [[CAR], []],  # one object
        [[CAR, _moved(CAR, x=3.)], [_moved(CAR, x=-3.)]],  # equal depths
        [[_moved(CAR, z=float('nan')), _moved(CAR, z=float('inf'))], [CAR]],
        [[_moved(CAR, x=-40.), _moved(CAR, x=60.)], []],  # centres off
        [[_moved(CAR, z=1.), _moved(CAR, z=90.)], []],  # depth out of range
    ],
    ids=['empty', 'one', 'equal-depth', 'non-finite', 'off-image', 'range'])
def test_degenerate_batches_give_finite_attached_losses(objects):
    torch.manual_seed(0)
    losses = tiny_losses(tiny_wrapper(), objects)
    assert AUX_KEYS <= set(losses)


def test_losses_in_float32_under_autocast():
    objects = [[CAR, _moved(CAR, z=30., x=2.)], [_moved(CAR, z=10.)]]
    losses = tiny_losses(tiny_wrapper(), objects, autocast=True)
    assert all(losses[k] != 0 for k in ('loss_qi', 'loss_obj_depth'))


class RecordingLoss(nn.Module):

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, descriptors, depths):
        self.calls.append(depths.detach().clone())
        return descriptors.pow(2).mean()


def test_pair_scope_and_filters():
    objects = [[CAR, _moved(CAR, z=30.), _moved(CAR, z=3., label=0)],
               [_moved(CAR, z=10.)], [_moved(CAR, z=50.),
                                      _moved(CAR, z=1.)]]
    rec = RecordingLoss()
    wrapper = DepthDiscriminativeDetector(
        detector=TinyDetector(), qi_loss=rec, depth_map_head=None,
        ignore_classes=(0, ))
    wrapper.loss(make_inputs(3), make_samples(objects))
    # one call over the batch; the pedestrian (class 0) and the 1 m object
    # are dropped
    assert len(rec.calls) == 1
    assert rec.calls[0].tolist() == pytest.approx([20., 30., 10., 50.])
    rec.calls.clear()
    wrapper.pair_scope = 'image'
    losses = wrapper.loss(make_inputs(3), make_samples(objects))
    # only image 0 has two kept objects
    assert [c.tolist() for c in rec.calls] == [pytest.approx([20., 30.])]
    assert set(losses) == {'loss_cls', 'loss_qi'}


def test_misconfiguration_errors():
    with pytest.raises(KeyError, match='qi_loss.*NoSuchLoss'):
        tiny_wrapper(qi_loss=dict(type='NoSuchLoss'))
    with pytest.raises(KeyError, match='dense_metric_loss'):
        tiny_wrapper(dense_metric_loss=dict(type='Nope', unit_size=1))
    with pytest.raises(ValueError, match='pair_scope'):
        tiny_wrapper(pair_scope='global')
    with pytest.raises(ValueError, match='descriptor_pool'):
        tiny_wrapper(descriptor_pool=4)
    with pytest.raises(TypeError, match='forward_shifted_pairs'):
        tiny_wrapper(dense_metric_loss=RecordingLoss())
    with pytest.raises(ValueError, match='min_depth .* max_depth'):
        tiny_wrapper(depth_map_head=dict(type='ObjectDepthMapHead',
                                         min_depth=70.))
    wrapper = tiny_wrapper(feature_level=2)
    with pytest.raises(IndexError, match='feature_level=2.*0..0'):
        wrapper.loss(make_inputs(2), make_samples())
    wrapper = tiny_wrapper(
        depth_map_head=dict(type='ObjectDepthMapHead', in_channels=64))
    with pytest.raises(ValueError, match='depth_map_head.in_channels=6'):
        wrapper.loss(make_inputs(2), make_samples())

    class NoHead(nn.Module):

        def extract_feat(self, inputs):
            return inputs

    with pytest.raises(TypeError, match='no bbox_head'):
        DepthDiscriminativeDetector(detector=NoHead())

    class NoFeat(nn.Module):

        def __init__(self):
            super().__init__()
            self.bbox_head = TinyHead()

    with pytest.raises(TypeError, match='extract_feat'):
        DepthDiscriminativeDetector(detector=NoFeat())


def _painted_depths(wrapper, objects):
    """The depths in the depth map head's targets during ``loss``."""
    head = wrapper.depth_map_head
    recorded = []
    loss_by_feat = head.loss_by_feat

    def record(depth_logits, log_vars, targets):
        recorded.append(targets)
        return loss_by_feat(depth_logits, log_vars, targets)

    head.loss_by_feat = record
    wrapper.loss(make_inputs(len(objects)), make_samples(objects))
    assert len(recorded) == 1
    return sorted(set(recorded[0].unique().tolist()) - {0.})


def test_depth_map_head_range_in_config_changes_what_is_painted():
    # a car at 20 m and one at 10 m, side by side
    objects = [[CAR, _moved(CAR, x=-4., z=10.)]]
    assert _painted_depths(tiny_wrapper(), objects) == [10., 20.]
    # the head's own range, set in its config, decides its targets
    head_cfg = dict(type='ObjectDepthMapHead', min_depth=15.)
    wrapper = tiny_wrapper(depth_map_head=head_cfg)
    assert wrapper.depth_map_head.min_depth == 15.
    assert _painted_depths(wrapper, objects) == [20.]
    head_cfg = dict(type='ObjectDepthMapHead', max_depth=15.)
    assert _painted_depths(tiny_wrapper(depth_map_head=head_cfg),
                           objects) == [10.]
    # without one, the head takes the wrapper's range
    wrapper = tiny_wrapper(min_depth=15.)
    assert wrapper.depth_map_head.min_depth == 15.
    assert _painted_depths(wrapper, objects) == [20.]


def test_the_steps_of_loss_are_methods():
    """loss = loss_by_feat(extract_feat(...)); its steps give the feature
    map and its stride, the object descriptors and the depth targets."""
    torch.manual_seed(0)
    wrapper = tiny_wrapper()
    objects = [[CAR, _moved(CAR, z=30., x=2.)], [_moved(CAR, z=10.)]]
    inputs, samples = make_inputs(2), make_samples(objects)
    feats = wrapper.extract_feat(inputs)
    feat, stride = wrapper.aux_feature_map(feats, inputs)
    assert feat is feats[0] and stride == (4., 4.)
    descriptors = wrapper.object_descriptors(feat, stride, samples)
    assert descriptors.descriptors.shape == (3, 6)
    assert descriptors.descriptors.dtype == torch.float32
    assert descriptors.depths.tolist() == pytest.approx([20., 30., 10.])
    assert descriptors.image_ids.tolist() == [0, 0, 1]
    targets = wrapper.depth_map_targets(feat, stride, samples)
    assert targets.shape == (2, H // 4, W // 4)
    assert set(targets.unique().tolist()) == {0., 10., 20., 30.}
    by_feat = wrapper.loss_by_feat(feats, inputs, samples)
    full = wrapper.loss(inputs, samples)
    assert set(by_feat) == set(full) == AUX_KEYS | {'loss_cls'}
    for key, value in full.items():
        assert torch.equal(by_feat[key], value), key
    aux = wrapper.loss_auxiliary(feat, stride, samples)
    for key in AUX_KEYS:
        assert torch.equal(aux[key], full[key]), key


def test_inference_delegates_and_checkpoint_keys():
    wrapper = tiny_wrapper()
    forbid_aux(wrapper)
    inputs = make_inputs(1)
    out = wrapper(inputs, None, mode='tensor')
    assert torch.equal(out[0], wrapper.detector.extract_feat(inputs)[0])
    keys = wrapper.state_dict().keys()
    assert all(k.startswith(('detector.', 'depth_map_head.', 'qi_loss.',
                             'metric_loss.', 'dense_metric_loss.'))
               for k in keys)
    assert any(k.startswith('depth_map_head.') for k in keys)


def test_descriptors_gathered_across_processes(monkeypatch):
    """With pair_scope='batch' the detector hands its objects to the
    cross-process gather (a no-op here; tested with 3 processes in
    test_descriptors.py); with 'image' or the option off it does not."""
    from ddml.models.detectors import depth_discriminative as module
    calls = []

    def fake_gather(objects, num_images):
        calls.append((objects.num_objects, num_images))
        return objects

    monkeypatch.setattr(module, 'gather_object_descriptors', fake_gather)
    objects = [[CAR, _moved(CAR, z=30.)], [_moved(CAR, z=10.)]]
    for kwargs, expected in [(dict(), [(3, 2)]),
                             (dict(pair_scope='image'), []),
                             (dict(gather_across_processes=False), [])]:
        calls.clear()
        wrapper = tiny_wrapper(**kwargs)
        wrapper.loss(make_inputs(2), make_samples(objects))
        assert calls == expected, kwargs


def test_init_weights_reaches_the_depth_head():
    wrapper = tiny_wrapper()
    nn.init.constant_(wrapper.depth_map_head.pred.bias, 1.)
    wrapper.init_weights()
    assert wrapper.depth_map_head.pred.bias.abs().max() == 0
