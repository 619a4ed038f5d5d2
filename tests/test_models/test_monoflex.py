"""MonoFlex (ddml.compat.monoflex): perfect predictions give zero losses
and decode to the ground truth, the loss terms by hand, the real KITTI
pipeline's targets, and every MonoFlex config trains two iterations with
mmdet3d's Runner and evaluates (the builders of
tests/test_configs/test_configs.py).

The real KITTI frames of ``../shared/data`` are used where available; those
tests skip with the reason printed when the folder is absent.
"""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import ddml  # noqa: F401
from ddml.testing import make_samples
from mmdet3d.registry import DATASETS, MODELS, TRANSFORMS
from mmdet3d.structures import CameraInstance3DBoxes
from mmdet3d.utils import register_all_modules

register_all_modules(init_default_scope=True)
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
MONOFLEX_CONFIGS = sorted((REPO / 'configs' / 'monoflex').glob('*.py')) + \
    sorted((REPO / 'configs' / 'demo').glob('*monoflex*.py'))
FULL = REPO / 'configs' / 'monoflex' / \
    'monoflex_dla34_pytorch_dlaneck_gn-all_1xb8-100e_kitti-mono3d.py'
DEMO = REPO / 'configs' / 'demo' / \
    'monoflex_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py'
CAM = [[186.0, 0.0, 157.0, 11.6], [0.0, 186.0, 44.6, 0.06],
       [0.0, 0.0, 1.0, 0.0027], [0.0, 0.0, 0.0, 1.0]]
HEAD = dict(type='FixedMonoFlexHead', num_classes=3, in_channels=16,
            cls_branch=(8, ), reg_branch=((8, ), ) * 8,
            norm_cfg=dict(type='BN'))
# well separated objects (x, y_bottom, z, l, h, w, yaw, label), one of them
# truncated (projected centre left of the image, box partly inside)
OBJECTS = [[(1.0, 1.6, 12.0, 3.9, 1.5, 1.6, 0.3, 2),
            (-3.0, 1.7, 25.0, 0.8, 1.8, 0.6, -2.0, 0),
            (-7.5, 1.6, 8.0, 3.9, 1.5, 1.6, 0.0, 2)],
           [(4.0, 1.6, 18.0, 1.8, 1.7, 0.6, 2.6, 1)]]


def _configs_module():
    spec = importlib.util.spec_from_file_location(
        'ddml_test_configs', REPO / 'tests' / 'test_configs' /
        'test_configs.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _head(**kwargs):
    head = MODELS.build(dict(HEAD, **kwargs))
    head.init_weights()
    return head


def _samples(objects=OBJECTS):
    samples = make_samples(objects, CAM, (96, 320))
    for s in samples:  # mmdet3d's depths: what the camera divides by
        s.gt_instances_3d.depths += CAM[2][3]
    return samples


def _targets(head, samples, shape=(24, 80)):
    return head.get_targets([s.gt_instances_3d for s in samples],
                            [s.gt_instances for s in samples],
                            (len(samples), head.num_classes) + shape,
                            [s.metainfo for s in samples])


def _perfect_outputs(head, samples, shape=(24, 80)):
    """Heatmap and regression maps that encode the ground truth exactly
    (uncertainties 0)."""
    heat, t = _targets(head, samples, shape)
    reg = torch.zeros(len(samples), 50, *shape)
    nb = head.bbox_coder.num_dir_bins
    means = torch.tensor(head.bbox_coder.base_dims)[t['labels'], :3]
    for n in range(len(t['labels'])):
        v = torch.zeros(50)
        cell = t['cells'][n].float()
        box = t['bbox2d'][n]
        v[0:2], v[2:4] = cell - box[:2], box[2:] - cell
        v[4:6] = t['offsets'][n]
        v[6:26] = t['keypoints'][n].flatten()
        v[29:32] = torch.log(t['dims'][n] / means[n])
        for i in range(nb):
            inside = bool(t['orientation'][n, i])
            v[32 + 2 * i:34 + 2 * i] = torch.tensor(
                [-10., 10.] if inside else [10., -10.])
            off = t['orientation'][n, nb + i]
            v[40 + 2 * i:42 + 2 * i] = torch.stack(
                [torch.sin(off), torch.cos(off)])
        v[48] = -torch.log(t['depth'][n])  # inverse of 1/sigmoid(o) - 1
        b, (cx, cy) = int(t['batch_idx'][n]), t['cells'][n].tolist()
        reg[b, :, cy, cx] = v
    return heat.clamp(1e-4, 1 - 1e-4), reg, t


def test_perfect_predictions_give_zero_losses_and_the_ground_truth():
    head = _head()
    samples = _samples()
    heat, reg, t = _perfect_outputs(head, samples)
    assert t['trunc'].tolist() == [False, False, True, False]
    metas = [s.metainfo for s in samples]
    losses = head.loss_by_feat([heat], [reg],
                               [s.gt_instances_3d for s in samples],
                               [s.gt_instances for s in samples], metas)
    for name, value in losses.items():
        if name != 'loss_cls':
            assert abs(value.item()) < 2e-3, (name, value.item())
    res3d, res2d = head.predict_by_feat([heat], [reg], metas)
    for i, sample in enumerate(samples):
        gt = sample.gt_instances_3d.bboxes_3d.tensor
        pred = res3d[i].bboxes_3d.tensor
        order = torch.cdist(gt[:, :3], pred[:, :3]).argmin(dim=1)
        pred = pred[order]
        assert len(res3d[i].bboxes_3d) == len(gt)
        # (the keypoint depths add the coder's eps = 1e-3 cell to heights)
        assert torch.allclose(pred[:, :6], gt[:, :6], rtol=5e-4, atol=2e-3)
        dyaw = (pred[:, 6] - gt[:, 6] + math.pi) % (2 * math.pi) - math.pi
        assert dyaw.abs().max() < 1e-3
        # 2D boxes back in the image (here the input), as regressed
        assert torch.allclose(res2d[i].bboxes[order],
                              sample.gt_instances.bboxes, atol=2e-2)


def test_loss_terms_by_hand():
    """MonoFlex's reductions: L1 summed over coordinates, keypoints over
    visible ones, truncated offsets in log(1 + L1), the release's weights."""
    head = _head()
    samples = _samples()
    heat, reg, t = _perfect_outputs(head, samples)
    b, cells = t['batch_idx'], t['cells']
    bumped = reg.clone()
    # offsets +0.5 cell in x and y, every size output +0.1, keypoints +1
    bumped[b, 4, cells[:, 1], cells[:, 0]] += 0.5
    bumped[b, 5, cells[:, 1], cells[:, 0]] += 0.5
    bumped[b, 29:32, cells[:, 1], cells[:, 0]] += 0.1
    bumped[b, 6:26, cells[:, 1], cells[:, 0]] += 1.0
    losses = head.loss_by_feat([heat], [bumped],
                               [s.gt_instances_3d for s in samples],
                               [s.gt_instances for s in samples],
                               [s.metainfo for s in samples])
    assert losses['loss_offsets_2d'].item() == pytest.approx(0.5 * 1.0,
                                                             rel=1e-4)
    assert losses['loss_trunc_offsets'].item() == pytest.approx(
        0.1 * math.log(2.0), rel=1e-4)
    dims_err = (t['dims'] * (math.exp(0.1) - 1)).sum(1).mean()
    assert losses['loss_dims'].item() == pytest.approx(dims_err.item(),
                                                       rel=1e-4)
    assert losses['loss_keypoints'].item() == pytest.approx(2.0, rel=1e-4)


def test_invalid_keypoint_groups_train_their_uncertainty():
    head = _head()
    samples = _samples()
    heat, reg, t = _perfect_outputs(head, samples)
    invalid = ~t['keypoints_depth_valid']
    assert invalid.any()  # the truncated car's corners leave the image
    reg = reg.clone()
    b, cells = t['batch_idx'], t['cells']
    reg[b, 6:26, cells[:, 1], cells[:, 0]] *= 1.1  # keypoint depths off
    reg.requires_grad_(True)
    losses = head.loss_by_feat([heat], [reg],
                               [s.gt_instances_3d for s in samples],
                               [s.gt_instances for s in samples],
                               [s.metainfo for s in samples])
    losses['loss_keypoints_depth'].backward()
    grad_u = reg.grad[b, 26:29, cells[:, 1], cells[:, 0]]
    # the uncertainty of every invalid group is pushed up (negative grad)
    assert (grad_u[invalid] < 0).all()
    off = _head(train_invalid_keypoint_uncertainty=False)
    reg.grad = None
    off.loss_by_feat([heat], [reg], [s.gt_instances_3d for s in samples],
                     [s.gt_instances for s in samples],
                     [s.metainfo for s in samples]
                     )['loss_keypoints_depth'].backward()
    assert reg.grad[b, 26:29, cells[:, 1], cells[:, 0]][invalid].abs().max() \
        == 0


def test_detector_predicts_3d_and_2d_and_trains_in_the_wrapper():
    cfg = Config.fromfile(str(DEMO))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'MonoFlex'
    model.init_weights()
    samples = make_samples([[(1.0, 1.6, 12.0, 3.9, 1.5, 1.6, 0.3, 0),
                             (-4.0, 1.6, 20.0, 3.9, 1.5, 1.6, -1.3, 0),
                             (5.0, 1.6, 28.0, 3.9, 1.5, 1.6, 1.3, 0)]],
                           [[124.0, 0., 104.0, 8.0], [0., 124.0, 30.0, 0.],
                            [0., 0., 1., 0.], [0., 0., 0., 1.]], (128, 416))
    data = model.data_preprocessor(
        dict(inputs=dict(img=[torch.rand(3, 128, 416) * 255]),
             data_samples=samples), False)
    model.eval()
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    assert 'pred_instances_3d' in out[0] and 'pred_instances' in out[0]
    wrapped = MODELS.build(
        Config.fromfile(str(REPO / 'configs' / 'demo' / (
            'ddml_' + DEMO.name))).model)
    wrapped.init_weights()
    wrapped.train()
    losses = wrapped.loss(dict(imgs=torch.rand(1, 3, 128, 416)), samples)
    assert 'loss_qi' in losses and 'loss_keypoints_depth' in losses
    assert all(torch.isfinite(v) for v in losses.values())


# ------------------------------------------------------------ transforms
def _affine_sample():
    """One object whose projected centre is left of the image (box partly
    inside), one inside: original 1242x375 KITTI-sized image."""
    boxes = CameraInstance3DBoxes(torch.tensor(
        [[-9.0, 1.6, 8.0, 3.9, 1.5, 1.6, 0.0],
         [1.0, 1.6, 12.0, 3.9, 1.5, 1.6, 0.3]]))
    return dict(
        img=np.zeros((375, 1242, 3), np.uint8),
        centers_2d=np.array([[-180.0, 200.0], [680.0, 190.0]], np.float32),
        gt_bboxes=np.array([[0., 150., 120., 260.], [600., 150., 760., 230.]],
                           np.float32),
        gt_bboxes_labels=np.array([2, 2]), gt_labels_3d=np.array([2, 2]),
        gt_bboxes_3d=boxes, depths=np.array([8.0, 12.0], np.float32),
        gt_difficulty=np.array([2, 0]))


def test_affine_resize_keeps_truncated_objects_aligned():
    ours = TRANSFORMS.build(dict(type='AffineResizeKeepTruncated',
                                 img_scale=(1280, 384), down_ratio=4))
    kept = ours.transform(_affine_sample())
    assert len(kept['gt_bboxes_3d']) == len(kept['centers_2d']) == 2
    assert kept['gt_difficulty'].tolist() == [2, 0]
    assert kept['centers_2d'][0, 0] < 0 and kept['trans_mat'].shape == (3, 3)
    upstream = TRANSFORMS.build(dict(type='AffineResize',
                                     img_scale=(1280, 384), down_ratio=4))
    dropped = upstream.transform(_affine_sample())
    assert len(dropped['gt_bboxes_3d']) == 1  # mmdet3d drops it
    # a box wholly outside the image is still dropped
    sample = _affine_sample()
    sample['gt_bboxes'][0] = [0., 150., 0., 260.]
    assert len(ours.transform(sample)['gt_bboxes_3d']) == 1


# ---------------------------------------------------- real KITTI pipeline
@pytest.mark.parametrize('flip', [0.0, 1.0])
def test_real_kitti_targets_are_exact(real_kitti_root, flip):
    """On the real frames through the full config's pipeline (AffineResize
    scales 1242 -> 1280 px): exact keypoint targets give every object's
    depth to 0.5 %, and the keypoints sit on the pipeline's projected
    centre also after mmdet3d's flip (which moves c_u but not P2's
    x-offset)."""
    cfg = Config.fromfile(str(FULL))
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(real_kitti_root)
    for t in dataset_cfg.pipeline:
        if t['type'] == 'RandomFlip3D':
            t['flip_ratio_bev_horizontal'] = flip
    dataset = DATASETS.build(dataset_cfg)
    head = _head(in_channels=64)
    items = [dataset[i] for i in range(len(dataset))]
    samples = [it['data_samples'] for it in items]
    for s, it in zip(samples, items):
        s.set_metainfo(dict(batch_input_shape=it['inputs']['img'].shape[-2:]))
    _, t = _targets(head, samples, shape=(96, 320))
    assert len(t['labels']) >= 8
    kp = t['keypoints'] + t['cells'][:, None].float()
    depths = head.bbox_coder.keypoints2depth(kp, t['dims'], t['cams'], 1.0)
    ok = t['keypoints_depth_valid']
    rel = (depths - t['depth'][:, None]).abs() / t['depth'][:, None]
    assert ok.any() and rel[ok].max() < 5e-3, rel
    centres = t['offsets'] + t['cells'].float()
    # bottom and top face centres lie straight under/over the centre
    assert (kp[:, 8, 0] - centres[:, 0]).abs().max() < 0.05
    assert (kp[:, 9, 0] - centres[:, 0]).abs().max() < 0.05


# ---------------------------------------------- configs: Runner, 2 iters
@pytest.fixture(scope='module')
def config_tools():
    return _configs_module()


def _run_config(tools, config, root, tmp_path):
    cfg = tools._small_run_cfg(config, root, tmp_path, tools.SMALL)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for t in loader.dataset.pipeline:
            if t['type'] == 'AffineResizeKeepTruncated':
                t['img_scale'] = tools.SMALL
    runner = tools._train(cfg)
    metrics = runner.test()
    tools._check_kitti_metrics(
        metrics, cfg.train_dataloader.dataset.metainfo['classes'])
    return runner, metrics


def _rel(path):
    return str(path.relative_to(REPO / 'configs'))


def test_configs_listed():
    names = {_rel(c) for c in MONOFLEX_CONFIGS}
    assert len(names) == 9, names
    for config in MONOFLEX_CONFIGS:
        cfg = Config.fromfile(str(config))
        det = cfg.model.get('detector', cfg.model)
        assert det.type == 'MonoFlex'
        assert det.bbox_head.type == 'FixedMonoFlexHead'
        steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        assert 'AffineResizeKeepTruncated' in steps, steps


def test_full_config_states_the_target():
    doc = FULL.read_text().split('"""')[1]
    assert '23.64 / 17.51 / 14.83' in doc and 'AP_R40' in doc


@pytest.mark.slow
@pytest.mark.parametrize('config', MONOFLEX_CONFIGS, ids=_rel)
def test_config_trains_two_iterations_synthetic(config, config_tools,
                                                synthetic_kitti_root,
                                                tmp_path):
    runner, _ = _run_config(config_tools, config, synthetic_kitti_root,
                            tmp_path)
    assert type(runner.model).__name__ in ('MonoFlex',
                                           'DepthDiscriminativeDetector')


@pytest.mark.slow
@pytest.mark.parametrize('config', MONOFLEX_CONFIGS, ids=_rel)
def test_config_trains_two_iterations_real(config, config_tools,
                                           real_kitti_root, tmp_path):
    _run_config(config_tools, config, real_kitti_root, tmp_path)
