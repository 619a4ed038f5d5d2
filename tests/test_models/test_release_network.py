"""configs/monodle builds the releases' network (issue 21, item 1).

The releases' own ``CenterNet3D`` (xinzhuma/monodle e426aa6 and
mingyuShin/DDML-M3DOD c378da3, read from ``../shared/reference``, never
copied here) is built with random weights (its ImageNet download
disabled), saved as its trainer saves it (``{'epoch', 'model_state',
'optimizer_state'}``, ``lib/helpers/save_helper.py``), converted with
``tools/convert_release_checkpoint.py`` and loaded into the config's model
with a strict key match; on the same input both must give the same neck
features and the same outputs of every branch (heatmap channels and size
channels in the config's order). Skips, saying why, when the reference
folder is absent.
"""
import ast
import os
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import ddml  # noqa: F401
from ddml.engine.release_checkpoint import (RELEASE_CLASSES,
                                            convert_release_checkpoint)

REPO = Path(__file__).resolve().parents[2]
#: the folder holding monodle/ and DDML-M3DOD/ (the same variable as
#: ddml.testing.reference's)
REFERENCE = Path(
    os.environ.get('DDML_REFERENCE_ROOT') or
    REPO.parent / 'shared' / 'reference')
CONFIGS = REPO / 'configs' / 'monodle'
MONODLE_CFG = CONFIGS / 'monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'
DDML_CFG = CONFIGS / \
    'ddml-release_monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py'
#: mmdet3d's classes of the 3-class configs; the release's are RELEASE_CLASSES
CLASSES = ('Pedestrian', 'Cyclist', 'Car')
INPUT_SHAPE = (1, 3, 96, 320)
#: float32 tolerance of the comparisons (the two run the same operations)
TOL = dict(rtol=1e-5, atol=1e-5)


def _reference(release: str) -> Path:
    root = REFERENCE / release
    if not (root / 'lib' / 'models' / 'centernet3d.py').is_file():
        pytest.skip(f'the release reference {root} is absent (it is '
                    '../shared/reference/{monodle,DDML-M3DOD}; set '
                    'DDML_REFERENCE_ROOT to the folder holding them)')
    return root


def _exec_file(path: Path, name: str, inject: dict) -> types.ModuleType:
    """A release file's imports, assignments, functions and classes as a
    module, without its ``sys.path`` edits, its imports of ``cv2`` and of
    its own ``lib`` package (given in ``inject`` instead) and its
    ``__main__`` block."""
    tree = ast.parse(path.read_text(), filename=str(path))
    body = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            if any(a.name.split('.')[0] in ('cv2', 'lib') for a in node.names):
                continue
        elif isinstance(node, ast.ImportFrom):
            if (node.module or '').split('.')[0] in ('cv2', 'lib'):
                continue
        elif not isinstance(node, (ast.Assign, ast.FunctionDef,
                                   ast.ClassDef)):
            continue
        body.append(node)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__dict__.update(inject)
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), 'exec'),
         module.__dict__)
    return module


def release_model(release: str, obj_depth: bool = False) -> torch.nn.Module:
    """The release's CenterNet3D (dla34, DLAUp, 3 classes), random weights.

    Args:
        release (str): ``'monodle'`` or ``'DDML-M3DOD'``.
        obj_depth (bool): DDML's ``obj_depth`` branch (DDML only).

    Returns:
        nn.Module: In eval mode; every weight, bias and BN statistic drawn
        at random (seeded), so that channel mix-ups show.
    """
    root = _reference(release)
    lib = root / 'lib'
    dla = _exec_file(lib / 'backbones' / 'dla.py', f'{release}_dla', {})
    dlaup = _exec_file(lib / 'backbones' / 'dlaup.py', f'{release}_dlaup',
                       {})
    # the release loads ImageNet weights (a download): build without them
    offline = types.SimpleNamespace(
        dla34=lambda pretrained=False, **kw: dla.dla34(False, **kw))
    net = _exec_file(lib / 'models' / 'centernet3d.py', f'{release}_net',
                     dict(dla=offline, DLAUp=dlaup.DLAUp))
    torch.manual_seed(0)
    kwargs = dict(obj_depth=True) if obj_depth else {}
    model = net.CenterNet3D(backbone='dla34', neck='DLAUp', num_class=3,
                            **kwargs)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var'):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith('running_mean'):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif t.dim() == 1 and name.endswith('weight'):  # BN scales
                t.copy_(0.8 + 0.4 * torch.rand(t.shape, generator=gen))
            elif t.dim() == 1:  # BN and conv biases
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            else:  # conv weights: their scale, random values
                std = max(float(t.std()), 0.01)
                t.copy_(std * torch.randn(t.shape, generator=gen))
    return model.eval()


def save_release_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """As the release's trainer saves it (save_helper.py,
    get_checkpoint_state: the DataParallel's module state, an optimizer
    state)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.save({'epoch': 140, 'model_state': model.state_dict(),
                'optimizer_state': optimizer.state_dict()}, str(path))


def release_forward(model, x):
    """Neck features and outputs of the release's forward."""
    with torch.no_grad():
        feat = model.neck(model.backbone(x)[model.first_level:])
        out = model(x)
    if isinstance(out, tuple):  # DDML's returns (outputs, features)
        out, feat_again = out
        torch.testing.assert_close(feat_again, feat, rtol=0, atol=0)
    return feat, out


def build_config_model(config: Path):
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(str(config))
    det = cfg.model.get('detector', cfg.model)
    det.backbone.init_cfg = None  # no download
    return MODELS.build(cfg.model).eval()


def ours_forward(model, x):
    """Neck features, MonoDLE's outputs by name and the depth map head's."""
    plain = getattr(model, 'detector', model)
    with torch.no_grad():
        feats = plain.extract_feat(dict(imgs=x))
        outs = plain.bbox_head(feats)
        names = ('heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d',
                 'size_3d', 'heading')
        result = dict(zip(names, outs))
        if getattr(model, 'depth_map_head', None) is not None:
            result['obj_depth'] = torch.cat(model.depth_map_head(feats[0]),
                                            1)
    return feats[0], result


def assert_same_outputs(ours: dict, theirs: dict, feat_ours, feat_theirs):
    """Every branch equal, after the channel orders are matched."""
    torch.testing.assert_close(feat_ours, feat_theirs, **TOL)
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    worst = {}
    for name, value in theirs.items():
        # the outputs are not degenerate: channel mix-ups would show
        assert value.std() > 1e-3 and value.isfinite().all(), name
        if name in ('heatmap', 'size_3d'):
            assert not torch.allclose(ours[name], value, **TOL), name
        if name == 'heatmap':
            value = value[:, [RELEASE_CLASSES.index(c) for c in CLASSES]]
        elif name == 'size_3d':  # release (h, w, l) -> ours (l, h, w)
            value = value[:, [2, 0, 1]]
        assert ours[name].shape == value.shape, name
        torch.testing.assert_close(ours[name], value, **TOL, msg=name)
        worst[name] = float((ours[name] - value).abs().max())
    worst['neck'] = float((feat_ours - feat_theirs).abs().max())
    print('largest |ours - release|:', worst)
    return worst


@pytest.mark.parametrize('release,obj_depth,config', [
    ('monodle', False, MONODLE_CFG),
    ('DDML-M3DOD', True, DDML_CFG),
    ('DDML-M3DOD', False, MONODLE_CFG),
], ids=['monodle', 'ddml-obj_depth', 'ddml-no-obj_depth'])
def test_converted_release_gives_release_outputs(release, obj_depth, config,
                                                 tmp_path):
    theirs = release_model(release, obj_depth=obj_depth)
    path = tmp_path / 'checkpoint_epoch_140.pth'
    save_release_checkpoint(theirs, path)
    result = convert_release_checkpoint(str(path))  # the default config
    assert Path(result['config']).resolve() == config.resolve()
    assert result['dropped'] == ['backbone.fc.weight', 'backbone.fc.bias']
    model = build_config_model(config)
    model.load_state_dict(result['checkpoint']['state_dict'], strict=True)
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(2))
    feat_theirs, out_theirs = release_forward(theirs, x)
    feat_ours, out_ours = ours_forward(model, x)
    assert feat_ours.shape == (1, 64, 24, 80)
    expected = {'heatmap', 'offset_2d', 'size_2d', 'depth', 'offset_3d',
                'size_3d', 'heading'} | ({'obj_depth'} if obj_depth else set())
    assert set(out_ours) == expected
    assert_same_outputs(out_ours, out_theirs, feat_ours, feat_theirs)


def test_obj_depth_left_out_for_the_monodle_config(tmp_path):
    """A DDML checkpoint converts to the plain MonoDLE config too (its
    obj_depth head is training-only), with the same detector outputs."""
    theirs = release_model('DDML-M3DOD', obj_depth=True)
    path = tmp_path / 'ddml.pth'
    save_release_checkpoint(theirs, path)
    result = convert_release_checkpoint(str(path), str(MONODLE_CFG))
    assert 'obj_depth.0.weight' in result['dropped']
    assert any('obj_depth' in note for note in result['notes'])
    model = build_config_model(MONODLE_CFG)
    model.load_state_dict(result['checkpoint']['state_dict'], strict=True)
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(3))
    feat_theirs, out_theirs = release_forward(theirs, x)
    out_theirs.pop('obj_depth')
    feat_ours, out_ours = ours_forward(model, x)
    assert_same_outputs(out_ours, out_theirs, feat_ours, feat_theirs)


def test_tool_writes_a_strict_loadable_checkpoint(tmp_path):
    """The command line, and mmengine's loader (weights_only, as
    tools/test.py loads it) with strict=True."""
    from mmengine.runner import load_checkpoint
    theirs = release_model('monodle')
    release = tmp_path / 'release.pth'
    # DataParallel's own state dict (module. prefix) converts as well
    state = OrderedDict(
        (f'module.{k}', v) for k, v in theirs.state_dict().items())
    torch.save({'epoch': 10, 'model_state': state, 'optimizer_state': None},
               str(release))
    out = tmp_path / 'converted.pth'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'convert_release_checkpoint.py'),
         str(release), str(out)],
        capture_output=True, text=True, cwd=str(REPO),
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr
    assert 'evaluate with: python tools/test.py' in proc.stdout
    model = build_config_model(MONODLE_CFG)
    checkpoint = load_checkpoint(model, str(out), map_location='cpu',
                                 strict=True)
    info = checkpoint['meta']['ddml_release_conversion']
    assert info['epoch'] == 10 and info['classes'] == list(CLASSES)
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(4))
    feat_theirs, out_theirs = release_forward(theirs, x)
    feat_ours, out_ours = ours_forward(model, x)
    assert_same_outputs(out_ours, out_theirs, feat_ours, feat_theirs)


def test_dlanet_is_the_release_dla34():
    """mmdet3d's DLANet(34) equals the release's dla34 up to norm names:
    the same keys after renaming (the ImageNet classifier left out) and
    the same six levels on one input."""
    from mmdet3d.models.backbones import DLANet

    from ddml.models.backbones import dla_state_dict_from_release
    theirs = release_model('monodle').backbone
    renamed, dropped = dla_state_dict_from_release(theirs.state_dict())
    assert dropped == ['fc.weight', 'fc.bias']
    ours = DLANet(depth=34, norm_cfg=dict(type='BN')).eval()
    assert list(ours.state_dict()) != list(theirs.state_dict())
    ours.load_state_dict(renamed, strict=True)
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        levels_theirs = theirs(x)
        levels_ours = ours(x)
    assert len(levels_ours) == len(levels_theirs) == 6
    for a, b in zip(levels_ours, levels_theirs):
        torch.testing.assert_close(a, b, **TOL)


def test_pretrained_dla_loads_every_layer(tmp_path):
    """init_cfg=dict(type='PretrainedDLA') loads an ImageNet-format DLA-34
    (the release's names, with its classifier) into DLANet, every layer
    (mmengine's Pretrained would skip the renamed BN layers)."""
    from mmdet3d.models.backbones import DLANet
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    theirs = release_model('monodle').backbone
    path = tmp_path / 'dla34-imagenet.pth'
    torch.save(theirs.state_dict(), str(path))  # as dla34-ba72cf86.pth
    ours = DLANet(depth=34, norm_cfg=dict(type='BN'),
                  init_cfg=dict(type='PretrainedDLA', checkpoint=str(path)))
    ours.init_weights()
    ours.eval()
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            torch.testing.assert_close(a, b, **TOL)
    # what mmengine's Pretrained does with the same file: BN left out
    plain = DLANet(depth=34, norm_cfg=dict(type='BN'),
                   init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    plain.init_weights()
    key = 'level2.tree1.norm1.running_var'
    assert not torch.equal(plain.state_dict()[key], ours.state_dict()[key])


def test_neck_initialises_like_the_release():
    """MonoDLEDLAUp has the release's keys, shapes and initial up-sampling
    kernels (bilinear), and BN at 1/0."""
    from ddml.models.necks import MonoDLEDLAUp
    theirs = release_model('monodle')
    reference = _exec_file(
        _reference('monodle') / 'lib' / 'backbones' / 'dlaup.py', 'dlaup',
        {})
    fresh = reference.DLAUp([64, 128, 256, 512], scales_list=[1, 2, 4, 8])
    neck = MonoDLEDLAUp(in_channels=[16, 32, 64, 128, 256, 512])
    neck.init_weights()
    ours, ref = neck.state_dict(), fresh.state_dict()
    assert list(ours) == list(ref)
    assert list(ref) == list(theirs.neck.state_dict())
    for key, value in ref.items():
        assert ours[key].shape == value.shape, key
        if '.up_' in key or '.bn.' in key:
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
