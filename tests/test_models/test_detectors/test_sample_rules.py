"""The release's sample rules as options of DepthDiscriminativeDetector.

``skip_aux_on_affine_aug`` (auxiliary losses only on images that were not
randomly shifted or scaled) and ``min_difficulty`` (objects below a KITTI
difficulty get no descriptor and no depth-map target), on the light SMOKE
demo config ``configs/demo/ddml-release_smoke_*`` with all four auxiliary
losses, fed by mmdet3d's real training pipeline (``RandomShiftScale`` +
``AffineResize``, here ddml's ``AffineResizeKeepInstanceKeys``) on synthetic
KITTI frames rendered into a temporary
directory. The config's pipeline also packs each object's KITTI
difficulty (``ddml.datasets.transforms``), which ``min_difficulty`` reads.
"""
import copy
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmdet3d.registry import DATASETS, MODELS  # noqa: E402

import ddml  # noqa: E402,F401  (registration)
from ddml.data_tools.synthetic_kitti import (DEMO_LAYOUT,  # noqa: E402
                                             make_demo_dataset)

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / 'configs' / 'demo' / (
    'ddml-release_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py')
AUX_KEYS = ('loss_qi', 'loss_metric', 'loss_obj_depth', 'loss_dense_metric')
NUM_FRAMES = 4


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory) -> Path:
    """Four synthetic demo frames (Cars, 1/3 of KITTI's size) and infos."""
    root = tmp_path_factory.mktemp('sample_rules')
    make_demo_dataset(root, NUM_FRAMES, 0, seed=21, scale=1 / 3, workers=1,
                      progress=False, convert=True, layout=DEMO_LAYOUT)
    return root


def _config() -> Config:
    init_default_scope('mmdet3d')
    return Config.fromfile(str(CONFIG))


def _dataset(root: Path, shift_scale: bool):
    """The config's training dataset; flips off; with ``shift_scale``,
    mmdet3d's RandomShiftScale (always applied) before AffineResize."""
    cfg = _config()
    dataset = cfg.train_dataloader.dataset
    pipeline = []
    for t in dataset.pipeline:
        if t['type'] == 'RandomFlip3D':
            continue
        if t['type'].startswith('AffineResize') and shift_scale:
            pipeline.append(
                dict(type='RandomShiftScale', shift_scale=(0.2, 0.4),
                     aug_prob=1.0))
        pipeline.append(t)
    dataset.update(data_root=str(root), pipeline=pipeline)
    return DATASETS.build(dataset)


@pytest.fixture(scope='module')
def frames(demo_root):
    """Per frame: (the sample as shifted/scaled by the real transforms,
    the sample without shift/scale)."""
    augmented = _dataset(demo_root, shift_scale=True)
    plain = _dataset(demo_root, shift_scale=False)
    out = [(augmented[i], plain[i]) for i in range(NUM_FRAMES)]
    for aug, ref in out:
        assert aug['data_samples'].metainfo['affine_aug'] is True
        assert ref['data_samples'].metainfo['affine_aug'] is False
        assert len(ref['data_samples'].gt_instances_3d) >= 2
    return out


def _model(**options):
    """The release demo wrapper with all four auxiliary losses and the
    sample rules of ``options`` (the wrapper's defaults for the others), in
    eval mode (batch norm on running statistics, so that the features of an
    image do not depend on the other images of its batch)."""
    cfg = _config()
    assert cfg.model.pop('skip_aux_on_affine_aug') is True
    assert cfg.model.pop('min_difficulty') == 'hard'
    cfg.model.detector.backbone.init_cfg = None
    # The released 'official' QI form is 0 at initialisation (no pair of
    # descriptors is above the upper bound yet); the hinge form has terms.
    cfg.model.qi_loss.mode = 'hinge'
    cfg.model.metric_loss = dict(type='MultiRangeDepthMetricLoss')
    cfg.model.dense_metric_loss = dict(
        type='MultiRangeDepthMetricLoss', unit_size=2, shifts=[(-2, -1)],
        cross_image=True)
    cfg.model.update(options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.eval()
    return model


def _losses(model, batch):
    data = model.data_preprocessor(pseudo_collate(batch), training=True)
    return model.loss(data['inputs'], data['data_samples'])


def _aux(losses):
    return {k: losses[k] for k in AUX_KEYS}


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------
# skip_aux_on_affine_aug
# ----------------------------------------------------------------------
def test_affine_aug_images_are_left_out_of_the_aux_losses(frames):
    """Frames 0 and 2 shifted/scaled by RandomShiftScale, 1 and 3 not: the
    auxiliary losses equal those of the batch of frames 1 and 3 alone."""
    mixed = [frames[0][0], frames[1][1], frames[2][0], frames[3][1]]
    alone = [frames[1][1], frames[3][1]]
    model = _model(skip_aux_on_affine_aug=True)
    with torch.no_grad():
        got = _losses(model, mixed)
        want = _losses(model, alone)
        for key in AUX_KEYS:
            assert float(want[key]) != 0, key  # every loss has terms
            _close(got[key], want[key])
        # without the rule the augmented frames change every aux loss
        off = _model()
        assert off.skip_aux_on_affine_aug is False
        unruled = _losses(off, mixed)
        for key in AUX_KEYS:
            assert not torch.allclose(unruled[key], want[key]), key
        # the wrapped head's own losses are not touched by the rule
        for key in set(got) - set(AUX_KEYS):
            assert torch.equal(got[key], unruled[key]), key


def test_all_images_augmented_gives_attached_zeros(frames):
    model = _model(skip_aux_on_affine_aug=True)
    model.train()
    losses = _losses(model, [frames[0][0], frames[2][0]])
    for key in AUX_KEYS:
        assert float(losses[key]) == 0.0 and losses[key].requires_grad
    sum(losses[k] for k in AUX_KEYS).backward()
    head = model.depth_map_head.pred.weight
    assert head.grad is not None and torch.count_nonzero(head.grad) == 0


def test_missing_affine_aug_mark_names_the_option(frames):
    sample = copy.deepcopy(frames[1][1]['data_samples'])
    metainfo = dict(sample.metainfo)
    del metainfo['affine_aug']
    bare = type(sample)(metainfo=metainfo)
    bare.gt_instances_3d = sample.gt_instances_3d
    bare.gt_instances = sample.gt_instances
    model = _model(skip_aux_on_affine_aug=True)
    with pytest.raises(KeyError, match='skip_aux_on_affine_aug'):
        model.auxiliary_ground_truth([sample, bare])
    # without the rule the mark is not needed
    assert _model().auxiliary_ground_truth([bare])[0][0] is bare


# ----------------------------------------------------------------------
# min_difficulty
# ----------------------------------------------------------------------
CODES = (-1, 2, 0, 1)  # assigned to objects cyclically: none, hard, ...


def _with_difficulty(frame):
    """The unaugmented sample with ``gt_instances_3d.difficulty`` codes."""
    sample = copy.deepcopy(frame[1]['data_samples'])
    n = len(sample.gt_instances_3d)
    sample.gt_instances_3d.difficulty = torch.tensor(
        [CODES[i % len(CODES)] for i in range(n)])
    return dict(inputs=frame[1]['inputs'], data_samples=sample)


def _keep_only(frame, keep_codes):
    """The sample with only the objects whose code is in ``keep_codes``
    (by hand), without difficulty."""
    sample = frame['data_samples']
    keep = torch.tensor([int(c) in keep_codes
                         for c in sample.gt_instances_3d.difficulty])
    out = type(sample)(metainfo=sample.metainfo)
    out.gt_instances_3d = sample.gt_instances_3d[keep]
    out.gt_instances = sample.gt_instances[keep]
    return dict(inputs=frame['inputs'], data_samples=out)


@pytest.mark.parametrize('level,keep_codes', [('hard', (0, 1, 2)),
                                              ('moderate', (0, 1)),
                                              ('easy', (0, ))])
def test_objects_below_difficulty_get_no_descriptor(frames, level,
                                                    keep_codes):
    batch = [_with_difficulty(f) for f in frames]
    samples = [b['data_samples'] for b in batch]
    codes = torch.cat([s.gt_instances_3d.difficulty for s in samples])
    num_kept = int(sum((codes == c).sum() for c in keep_codes))
    assert 0 < num_kept < len(codes)
    model = _model(min_difficulty=level)
    data = model.data_preprocessor(pseudo_collate(batch), training=True)
    with torch.no_grad():
        feat, stride = model.aux_feature_map(
            model.extract_feat(data['inputs']), data['inputs'])
        all_objects = model.object_descriptors(feat, stride,
                                               data['data_samples'])
        aux_samples, used = model.auxiliary_ground_truth(
            data['data_samples'])
        kept = model.object_descriptors(feat, stride, aux_samples)
    assert used == [True] * NUM_FRAMES
    # every object of these frames has a descriptor without the rule ...
    assert all_objects.num_objects == len(codes)
    # ... and exactly the objects at the level or easier with it
    assert kept.num_objects == num_kept
    # the depth-map targets are painted from the kept objects only
    by_hand = [_keep_only(b, keep_codes)['data_samples'] for b in batch]
    head = model.depth_map_head
    targets = head.get_targets(aux_samples, feat.shape[-2:], stride)
    assert torch.equal(
        targets, head.get_targets(by_hand, feat.shape[-2:], stride))
    assert not torch.equal(
        targets, head.get_targets(samples, feat.shape[-2:], stride))


def test_difficulty_rule_equals_removing_the_objects(frames):
    """Every auxiliary loss with ``min_difficulty='hard'`` equals the loss
    without the rule on the samples whose 'UnKnown' objects were removed
    by hand (and differs from the loss with them)."""
    batch = [_with_difficulty(f) for f in frames]
    by_hand = [_keep_only(b, (0, 1, 2)) for b in batch]
    with torch.no_grad():
        got = _losses(_model(min_difficulty='hard'), batch)
        off = _model()
        want = _losses(off, by_hand)
        unruled = _losses(off, batch)
    for key in AUX_KEYS:
        _close(got[key], want[key])
        assert not torch.allclose(unruled[key], want[key]), key


def test_missing_or_bad_difficulty_is_rejected(frames):
    plain = copy.deepcopy(frames[1][1]['data_samples'])
    # the config's pipeline packs it (LoadObjectDifficulty); a sample of a
    # pipeline without it has none
    plain.gt_instances_3d.pop('difficulty')
    model = _model(min_difficulty='hard')
    with pytest.raises(KeyError, match='min_difficulty'):
        model.auxiliary_ground_truth([plain])
    bad = copy.deepcopy(plain)
    bad.gt_instances_3d.difficulty = torch.full(
        (len(bad.gt_instances_3d), ), 3)
    with pytest.raises(ValueError, match='difficulty'):
        model.auxiliary_ground_truth([bad])


# ----------------------------------------------------------------------
# options: off by default, values checked
# ----------------------------------------------------------------------
def test_rules_off_by_default_leave_the_losses_unchanged(frames):
    """Built without the options, the wrapper ignores the marks and the
    difficulty: the batch of augmented frames with 'UnKnown' objects gives
    the losses of the same batch without either, bit for bit."""
    model = _model()
    assert model.skip_aux_on_affine_aug is False
    assert model.min_difficulty is None
    batch = [_with_difficulty(f) for f in frames]
    samples = [b['data_samples'] for b in batch]
    aux_samples, used = model.auxiliary_ground_truth(samples)
    assert used == [True] * NUM_FRAMES
    assert all(a is b for a, b in zip(aux_samples, samples, strict=True))
    marked = []
    for b, f in zip(batch, frames):
        sample = copy.deepcopy(b['data_samples'])
        sample.set_metainfo(dict(affine_aug=True))
        marked.append(dict(inputs=f[1]['inputs'], data_samples=sample))
    with torch.no_grad():
        a = _losses(model, batch)
        b = _losses(model, marked)
    # (SMOKE's own head reads the mark too: its box loss skips marked
    # images, so only the auxiliary losses are compared.)
    for key in AUX_KEYS:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize('options,error', [
    (dict(min_difficulty='UnKnown'), ValueError),
    (dict(min_difficulty='medium'), ValueError),
    (dict(min_difficulty=2), ValueError),
    (dict(skip_aux_on_affine_aug='yes'), TypeError),
    (dict(skip_aux_on_affine_aug=1), TypeError),
])
def test_unknown_option_values_are_rejected(options, error):
    name = next(iter(options))
    with pytest.raises(error, match=name):
        _model(**options)
