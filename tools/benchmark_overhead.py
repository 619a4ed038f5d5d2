"""Measure what DDML's additions cost: training step, inference, parameters.

Builds the baseline detector from a config (default: mmdet3d's SMOKE) and a
``DepthDiscriminativeDetector`` around an identical copy, then times, side by
side in one process, interleaved over several repeats (alternating which
model goes first):

* a full training step (``train_step``: preprocessing, forward, backward,
  Adam update) on the same synthetic KITTI-like batch;
* inference (``test_step``) in eval mode;
* DDML's auxiliary losses alone (forward + backward on the feature map),
  a low-noise view of the overhead on a shared machine.

It prints the medians, the wrapper/baseline ratios and the parameter counts
of the baseline, the wrapper and the exported baseline checkpoint. No
pretrained weights are loaded (timing does not depend on them).

Example (slow on CPU; run in the background with a log):
    PYTHONPATH=projects/DDML python tools/benchmark_overhead.py \
        --iters 2 --repeats 3 --height 384 --width 1280
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np
import torch

try:
    import ddml  # noqa: F401
except ImportError:  # not pip-installed: use the in-tree package
    sys.path.insert(
        0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'projects', 'DDML'))
    import ddml  # noqa: F401
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData
from mmengine.utils import get_installed_path

from ddml.models.detectors import DepthDiscriminativeDetector
from ddml.models.detectors.depth_discriminative import \
    export_baseline_checkpoint
from mmdet3d.registry import MODELS
from mmdet3d.structures import (Box3DMode, CameraInstance3DBoxes,
                                Det3DDataSample, points_cam2img)
from mmdet3d.utils import register_all_modules

DEFAULT_CONFIG = \
    'mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py'
# KITTI P2 (image 1242x375); scaled to the benchmark resolution.
KITTI_FX, KITTI_CX, KITTI_CY, KITTI_W, KITTI_H = 721.5, 609.6, 172.9, 1242, \
    375


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Training / inference overhead of DDML vs the baseline')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='baseline config (file or mmdet3d::rel/path)')
    parser.add_argument('--iters', type=int, default=2,
                        help='timed iterations per model and repeat')
    parser.add_argument('--repeats', type=int, default=3,
                        help='interleaved repeats')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed iterations per model first')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--height', type=int, default=384)
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--objects', type=int, default=8,
                        help='objects per image')
    parser.add_argument('--down-ratio', type=int, default=4,
                        help="SMOKE's AffineResize down_ratio (trans_mat)")
    parser.add_argument('--metric', action='store_true',
                        help='also enable metric_loss and dense_metric_loss')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--flops', action='store_true',
                        help='also count FLOPs of one training step each')
    parser.add_argument('--json', default=None, help='also write results')
    return parser.parse_args()


def load_model_cfg(path: str) -> Config:
    if '::' in path:
        package, rel = path.split('::')
        path = osp.join(get_installed_path(package), '.mim', 'configs', rel)
    cfg = Config.fromfile(path).model
    if 'backbone' in cfg:
        cfg.backbone.init_cfg = None
    return cfg


def synthetic_batch(batch_size: int, height: int, width: int,
                    num_objects: int, down_ratio: int,
                    seed: int = 0) -> Dict:
    """Random images and KITTI-like objects (cars/pedestrians/cyclists)."""
    rng = np.random.default_rng(seed)
    scale = width / KITTI_W
    cam2img = [[KITTI_FX * scale, 0., KITTI_CX * scale, 0.],
               [0., KITTI_FX * scale, KITTI_CY * height / KITTI_H, 0.],
               [0., 0., 1., 0.], [0., 0., 0., 1.]]
    dims = {0: (0.8, 1.7, 0.6), 1: (1.8, 1.7, 0.6), 2: (3.9, 1.6, 1.6)}
    imgs, samples = [], []
    for _ in range(batch_size):
        imgs.append(
            torch.from_numpy(
                rng.integers(0, 256, (3, height, width), dtype=np.uint8)))
        labels = rng.integers(0, 3, num_objects)
        z = rng.uniform(5., 60., num_objects)
        # projected centres within the middle 80% of the image width
        x = rng.uniform(-0.4, 0.4, num_objects) * z * width / cam2img[0][0]
        boxes = [[x[i], 1.65, z[i], *dims[int(labels[i])],
                  rng.uniform(-np.pi, np.pi)] for i in range(num_objects)]
        boxes_3d = CameraInstance3DBoxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 7))
        proj = torch.tensor(cam2img)
        centers = points_cam2img(boxes_3d.gravity_center, proj)
        corners = points_cam2img(boxes_3d.corners.reshape(-1, 3),
                                 proj).reshape(-1, 8, 2)
        bboxes = torch.cat([corners.min(1).values, corners.max(1).values], 1)
        bboxes[:, 0::2] = bboxes[:, 0::2].clamp(0, width - 1)
        bboxes[:, 1::2] = bboxes[:, 1::2].clamp(0, height - 1)
        sample = Det3DDataSample()
        sample.set_metainfo(
            dict(
                cam2img=cam2img,
                trans_mat=np.diag([1. / down_ratio, 1. / down_ratio,
                                   1.]).astype(np.float32),
                affine_aug=False,
                img_shape=(height, width),
                ori_shape=(height, width),
                pad_shape=(height, width),
                scale_factor=np.array([1., 1.], dtype=np.float32),
                box_type_3d=CameraInstance3DBoxes,
                box_mode_3d=Box3DMode.CAM))
        gt3d = InstanceData()
        gt3d.bboxes_3d = boxes_3d
        gt3d.labels_3d = torch.from_numpy(labels).long()
        gt3d.centers_2d = centers
        gt3d.depths = boxes_3d.gravity_center[:, 2].clone()
        gt = InstanceData()
        gt.bboxes = bboxes
        gt.labels = torch.from_numpy(labels).long()
        sample.gt_instances_3d = gt3d
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=dict(img=imgs), data_samples=samples)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def interleaved(fns: Dict[str, Callable[[], None]], iters: int,
                repeats: int, warmup: int) -> Dict[str, Dict[str, List]]:
    """Per-iteration wall and process-CPU seconds of each fn.

    The order of the fns alternates by repeat. Process CPU time (all threads
    of this process) is less sensitive than wall time to other processes
    competing for the cores.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times = {name: dict(wall=[], cpu=[]) for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            for _ in range(iters):
                wall, cpu = time.perf_counter(), time.process_time()
                fns[name]()
                times[name]['cpu'].append(time.process_time() - cpu)
                times[name]['wall'].append(time.perf_counter() - wall)
        print(f'  repeat {rep + 1}/{repeats}: ' + ', '.join(
            f"{n} {times[n]['wall'][-1]:.3f}s wall "
            f"{times[n]['cpu'][-1]:.3f}s cpu" for n in names),
              flush=True)
    return times


def medians(times: Dict[str, Dict[str, List]]) -> Dict[str, Dict]:
    return {
        name: {kind: statistics.median(v)
               for kind, v in t.items()}
        for name, t in times.items()
    }


def train_step_flops(model: torch.nn.Module, batch: Dict) -> Dict[str, int]:
    """FLOPs of one forward + backward in loss mode.

    ``torch.utils.flop_counter`` sees aten convolutions and matmuls but not
    mmcv's deformable convolutions (SMOKE's neck); those are added from
    their output shapes (2 * outputs * C_in/groups * k_h * k_w forward,
    twice that backward).
    """
    from torch.utils.flop_counter import FlopCounterMode
    try:
        from mmcv.ops import DeformConv2d, ModulatedDeformConv2d
        dcn_types = (DeformConv2d, ModulatedDeformConv2d)
    except ImportError:
        dcn_types = ()
    dcn = [0]

    def hook(module, inputs, output):
        k_h, k_w = module.kernel_size
        dcn[0] += 2 * output.numel() * module.in_channels // \
            module.groups * k_h * k_w

    handles = [
        m.register_forward_hook(hook) for m in model.modules()
        if isinstance(m, dcn_types)
    ]
    model.train()
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    with FlopCounterMode(display=False) as counter:
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
    model.zero_grad()
    for handle in handles:
        handle.remove()
    counted = counter.get_total_flops()
    return dict(counted=counted, dcn=3 * dcn[0], total=counted + 3 * dcn[0])


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules(init_default_scope=True)
    device = torch.device(args.device)
    cfg = load_model_cfg(args.config)

    torch.manual_seed(0)
    baseline = MODELS.build(copy.deepcopy(cfg)).to(device)
    aux = dict()
    if args.metric:
        aux.update(
            metric_loss=dict(type='MultiRangeDepthMetricLoss'),
            dense_metric_loss=dict(type='MultiRangeDepthMetricLoss'))
    wrapper = DepthDiscriminativeDetector(detector=copy.deepcopy(cfg),
                                          **aux).to(device)
    wrapper.detector.load_state_dict(baseline.state_dict())

    exported = export_baseline_checkpoint(
        dict(meta={}, state_dict=wrapper.state_dict()))
    fresh = MODELS.build(copy.deepcopy(cfg))
    fresh.load_state_dict(exported['state_dict'], strict=True)
    params = dict(
        baseline=count(baseline),
        wrapper=count(wrapper),
        exported=count(fresh),
        exported_tensors=sum(v.numel()
                             for v in exported['state_dict'].values()),
        baseline_tensors=sum(v.numel()
                             for v in baseline.state_dict().values()))
    del fresh

    batch = synthetic_batch(args.batch_size, args.height, args.width,
                            args.objects, args.down_ratio)
    optims = {
        name: OptimWrapper(torch.optim.Adam(model.parameters(), lr=2.5e-4))
        for name, model in (('baseline', baseline), ('ddml', wrapper))
    }
    models = dict(baseline=baseline, ddml=wrapper)

    def train_fn(name):

        def step():
            models[name].train()
            models[name].train_step(copy.deepcopy(batch), optims[name])

        return step

    def test_fn(name):

        def step():
            models[name].eval()
            with torch.no_grad():
                models[name].test_step(copy.deepcopy(batch))

        return step

    # The auxiliary part alone, on a fixed feature map.
    wrapper.train()
    with torch.no_grad():
        data = wrapper.data_preprocessor(copy.deepcopy(batch), True)
        feat = wrapper.select_feature(
            wrapper.extract_feat(data['inputs'])).detach()
    from ddml.models.descriptors import infer_feature_stride
    stride = infer_feature_stride(data['inputs']['imgs'].shape[-2:],
                                  feat.shape[-2:])

    def aux_step():
        f = feat.clone().requires_grad_(True)
        losses = wrapper.loss_auxiliary(f, stride, data['data_samples'])
        sum(losses.values()).backward()

    print(f'config {args.config}; input {args.batch_size}x3x{args.height}x'
          f'{args.width}, {args.objects} objects/image; feature map '
          f'{tuple(feat.shape)} (stride {stride[0]:g}); threads '
          f'{torch.get_num_threads()}; device {device}', flush=True)
    print('training step (train_step) ...', flush=True)
    train = interleaved(
        dict(baseline=train_fn('baseline'), ddml=train_fn('ddml')),
        args.iters, args.repeats, args.warmup)
    print('inference (test_step) ...', flush=True)
    infer = interleaved(
        dict(baseline=test_fn('baseline'), ddml=test_fn('ddml')), args.iters,
        args.repeats, args.warmup)
    print('auxiliary losses alone (forward + backward) ...', flush=True)
    aux_t = interleaved(dict(aux=aux_step), max(args.iters, 3), args.repeats,
                        args.warmup)

    flops = None
    if args.flops:
        print('FLOPs of one training step ...', flush=True)
        flops = dict(
            baseline=train_step_flops(baseline, batch),
            ddml=train_step_flops(wrapper, batch))
    med, med_inf = medians(train), medians(infer)
    med_aux = medians(aux_t)['aux']

    def ratio(m, kind):
        return m['ddml'][kind] / m['baseline'][kind]

    results = dict(
        config=args.config,
        input=[args.batch_size, 3, args.height, args.width],
        objects_per_image=args.objects,
        threads=torch.get_num_threads(),
        device=str(device),
        train_s=med,
        train_ratio=dict(wall=ratio(med, 'wall'), cpu=ratio(med, 'cpu')),
        train_samples=train,
        infer_s=med_inf,
        infer_ratio=dict(
            wall=ratio(med_inf, 'wall'), cpu=ratio(med_inf, 'cpu')),
        infer_samples=infer,
        aux_s=med_aux,
        aux_fraction_of_baseline_step=dict(
            wall=med_aux['wall'] / med['baseline']['wall'],
            cpu=med_aux['cpu'] / med['baseline']['cpu']),
        flops=flops,
        params=params)
    print('\n== results (medians over '
          f'{args.repeats}x{args.iters} interleaved iterations) ==')
    for label, m in (('train step', med), ('inference ', med_inf)):
        print(f'{label} : baseline {m["baseline"]["wall"]:.3f}s wall '
              f'{m["baseline"]["cpu"]:.3f}s cpu | ddml '
              f'{m["ddml"]["wall"]:.3f}s wall {m["ddml"]["cpu"]:.3f}s cpu'
              f' | ratio {ratio(m, "wall"):.3f} wall, '
              f'{ratio(m, "cpu"):.3f} cpu')
    frac = results['aux_fraction_of_baseline_step']
    print(f'aux losses : {med_aux["wall"]:.4f}s wall '
          f'{med_aux["cpu"]:.4f}s cpu fwd+bwd = {100 * frac["wall"]:.2f}% '
          f'(wall), {100 * frac["cpu"]:.2f}% (cpu) of a baseline step')
    if flops is not None:
        extra = flops['ddml']['total'] / flops['baseline']['total'] - 1
        print(f'train FLOPs: baseline {flops["baseline"]["total"] / 1e9:.1f}'
              f' G, ddml {flops["ddml"]["total"] / 1e9:.1f} G '
              f'(+{100 * extra:.2f}%; deformable convs estimated: '
              f'{flops["baseline"]["dcn"] / 1e9:.1f} G)')
    print(f"parameters : baseline {params['baseline']:,}  wrapper "
          f"{params['wrapper']:,}  exported {params['exported']:,} "
          f"(state-dict elements {params['exported_tensors']:,} vs "
          f"{params['baseline_tensors']:,})")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
