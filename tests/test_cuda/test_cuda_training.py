"""The demo DDML detector trains on CUDA in fp32, fp16 and bf16.

The detector is built from
``configs/demo/ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py``
(SMOKE's head on a half-width ResNet-18 + SECONDFPN, the quasi-isometric
loss and the object depth-map head) and trained for 15 steps with
mmengine's ``AmpOptimWrapper`` (autocast + dynamic grad scaler, as
``tools/train.py --amp`` does) on frames that ddml's renderer writes into
a temporary directory, loaded by the config's own dataset and pipeline.
Spies on the auxiliary modules check that they run on the GPU, on GPU
inputs and targets, and that prediction never calls them.
"""
import copy
from contextlib import nullcontext
from pathlib import Path
from typing import Dict, List

import pytest
import torch

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = REPO / 'configs' / 'demo' / \
    'ddml_smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'
STEPS = 15
BATCH = 4
AUX_KEYS = ('loss_qi', 'loss_obj_depth')
PRECISIONS = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}


@pytest.fixture(scope='module')
def demo_batches(tmp_path_factory) -> List[dict]:
    """Two batches of 4 rendered frames through the config's pipeline."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from ddml.data_tools import make_demo_dataset
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    root = tmp_path_factory.mktemp('demo_kitti')
    # the demo config reads frames rendered at 1/3 of KITTI's size
    make_demo_dataset(root, 2 * BATCH, 1, seed=5, scale=1 / 3, workers=1,
                      progress=False, convert=True)
    cfg = Config.fromfile(str(DEMO_CFG))
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.data_root = str(root) + '/'
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) >= 2 * BATCH
    torch.manual_seed(0)
    items = [dataset[i] for i in range(2 * BATCH)]
    return [pseudo_collate(items[:BATCH]), pseudo_collate(items[BATCH:])]


def build_demo_model(device: torch.device) -> torch.nn.Module:
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    cfg = Config.fromfile(str(DEMO_CFG))
    assert cfg.model.type == 'DepthDiscriminativeDetector'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model.to(device)


class Spy:
    """Records the devices and dtypes the auxiliary parts see."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: Dict[str, List[tuple]] = {
            'qi_loss': [],
            'depth_map_head': [],
            'targets': [],
            'neck': []
        }
        self.handles = [
            model.qi_loss.register_forward_pre_hook(self._qi),
            model.depth_map_head.register_forward_hook(self._head),
            model.detector.neck.register_forward_hook(self._neck),
        ]
        head = model.depth_map_head
        original = head.loss_by_feat

        def loss_by_feat(depth_logits, log_vars, targets):
            self.calls['targets'].append(
                (targets.device.type, targets.dtype,
                 float((targets > 0).float().mean())))
            return original(depth_logits, log_vars, targets)

        head.loss_by_feat = loss_by_feat
        self._restore = lambda: delattr(head, 'loss_by_feat')

    def _qi(self, module, args):
        descriptors, depths = args
        self.calls['qi_loss'].append(
            (descriptors.device.type, depths.device.type,
             descriptors.shape[0]))

    def _head(self, module, args, output):
        self.calls['depth_map_head'].append(
            (args[0].device.type, ) +
            tuple(t.device.type for t in output))

    def _neck(self, module, args, output):
        maps = output if isinstance(output, (list, tuple)) else [output]
        self.calls['neck'].append(tuple(m.dtype for m in maps))

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self._restore()


@pytest.fixture
def deterministic_cudnn(cuda_device):
    """Deterministic cuDNN algorithms, so two identical forward passes
    give bit-identical outputs."""
    flags = (torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    yield cuda_device
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = \
        flags


@pytest.mark.parametrize('precision', list(PRECISIONS))
def test_demo_detector_trains_on_cuda(deterministic_cudnn, demo_batches,
                                      precision):
    from mmengine.optim import AmpOptimWrapper
    from mmengine.runner.amp import autocast
    device = deterministic_cudnn
    dtype = PRECISIONS[precision]
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip(f'{torch.cuda.get_device_name(device)} does not support '
                    'bfloat16')
    model = build_demo_model(device)
    model.train()
    assert model.qi_loss is not None and model.depth_map_head is not None
    for name, tensor in list(model.named_parameters()) + \
            list(model.named_buffers()):
        assert tensor.device.type == 'cuda', name
    start = {
        name: p.detach().clone()
        for name, p in model.named_parameters()
    }
    optim_wrapper = AmpOptimWrapper(
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        dtype=str(dtype).replace('torch.', ''))
    spy = Spy(model)
    try:
        history = []
        for step in range(STEPS):
            batch = copy.deepcopy(demo_batches[step % 2])
            log_vars = model.train_step(batch, optim_wrapper)
            history.append({k: v.item() for k, v in log_vars.items()})
        torch.cuda.synchronize(device)
        for step, values in enumerate(history):
            for key in ('loss', 'loss_cls', 'loss_bbox') + AUX_KEYS:
                assert key in values, (step, key)
                assert torch.isfinite(torch.tensor(values[key])), \
                    (precision, step, key, values[key])
        assert any(values['loss_qi'] > 0 for values in history)
        assert optim_wrapper.loss_scaler.get_scale() > 0
        # every step ran the auxiliary parts on the GPU, on GPU targets
        assert len(spy.calls['qi_loss']) == STEPS
        assert all(call[:2] == ('cuda', 'cuda') and call[2] >= 2
                   for call in spy.calls['qi_loss'])
        assert spy.calls['depth_map_head'] == \
            [('cuda', 'cuda', 'cuda')] * STEPS
        assert len(spy.calls['targets']) == STEPS
        for device_type, target_dtype, painted in spy.calls['targets']:
            assert device_type == 'cuda'
            assert target_dtype == torch.float32
            assert painted > 0
        # autocast really ran the network in the requested precision
        assert all(dtypes[0] == dtype for dtypes in spy.calls['neck'])
        for name, param in model.named_parameters():
            assert torch.isfinite(param).all(), name
        assert not torch.equal(
            start['detector.neck.deblocks.0.0.weight'],
            model.detector.neck.deblocks[0][0].weight.detach())
        assert not torch.equal(
            start['depth_map_head.conv.weight'],
            model.depth_map_head.conv.weight.detach())

        # prediction: the wrapper is the wrapped detector
        model.eval()
        spy.clear()
        amp = nullcontext() if dtype == torch.float32 else autocast(
            device_type='cuda', dtype=dtype)
        with torch.no_grad(), amp:
            wrapped = model.test_step(copy.deepcopy(demo_batches[0]))
            plain = model.detector.test_step(copy.deepcopy(demo_batches[0]))
        torch.cuda.synchronize(device)
        assert spy.calls['qi_loss'] == [] and \
            spy.calls['depth_map_head'] == []
        assert len(wrapped) == len(plain) == BATCH
        for ours, theirs in zip(wrapped, plain, strict=True):
            a, b = ours.pred_instances_3d, theirs.pred_instances_3d
            assert len(a.scores_3d) > 0
            assert a.bboxes_3d.tensor.device.type == 'cuda'
            assert torch.isfinite(a.bboxes_3d.tensor).all()
            assert torch.equal(a.bboxes_3d.tensor, b.bboxes_3d.tensor)
            assert torch.equal(a.scores_3d, b.scores_3d)
            assert torch.equal(a.labels_3d, b.labels_3d)
    finally:
        spy.remove()
