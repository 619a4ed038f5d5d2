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
                repeats: int, warmup: int) -> Dict[str, List[float]]:
    """Per-iteration seconds of each fn, alternating the order by repeat."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            for _ in range(iters):
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
        print(f'  repeat {rep + 1}/{repeats}: ' + ', '.join(
            f'{n} {times[n][-1]:.3f}s' for n in names), flush=True)
    return times


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

    med = {k: statistics.median(v) for k, v in train.items()}
    med_inf = {k: statistics.median(v) for k, v in infer.items()}
    med_aux = statistics.median(aux_t['aux'])
    results = dict(
        config=args.config,
        input=[args.batch_size, 3, args.height, args.width],
        objects_per_image=args.objects,
        threads=torch.get_num_threads(),
        device=str(device),
        train_s=med,
        train_ratio=med['ddml'] / med['baseline'],
        train_samples=train,
        infer_s=med_inf,
        infer_ratio=med_inf['ddml'] / med_inf['baseline'],
        infer_samples=infer,
        aux_s=med_aux,
        aux_fraction_of_baseline_step=med_aux / med['baseline'],
        params=params)
    print('\n== results (medians) ==')
    print(f"train step : baseline {med['baseline']:.3f}s  ddml "
          f"{med['ddml']:.3f}s  ratio {results['train_ratio']:.3f}")
    print(f"inference  : baseline {med_inf['baseline']:.3f}s  ddml "
          f"{med_inf['ddml']:.3f}s  ratio {results['infer_ratio']:.3f}")
    print(f'aux losses : {med_aux:.4f}s fwd+bwd = '
          f"{100 * results['aux_fraction_of_baseline_step']:.2f}% of a "
          'baseline step')
    print(f"parameters : baseline {params['baseline']:,}  wrapper "
          f"{params['wrapper']:,}  exported {params['exported']:,} "
          f"(state-dict elements {params['exported_tensors']:,} vs "
          f"{params['baseline_tensors']:,})")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
