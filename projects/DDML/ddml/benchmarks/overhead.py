"""What DDML's additions cost: training step, inference, parameters.

:func:`measure_overhead` builds the baseline detector from a config
(default: mmdet3d's SMOKE) and a ``DepthDiscriminativeDetector`` around an
identical copy, then times, side by side in one process, interleaved over
several repeats (alternating which model goes first):

* a full training step (``train_step``: preprocessing, forward, backward,
  Adam update) on the same synthetic KITTI-like batch;
* inference (``test_step``) in eval mode;
* DDML's auxiliary losses alone (forward + backward on the feature map), a
  low-noise view of the overhead on a shared machine;

and counts the parameters of the baseline, the wrapper and the exported
baseline checkpoint (and optionally the FLOPs of a training step). No
pretrained weights are loaded (timing does not depend on them).
``tools/benchmark_overhead.py`` is its command line.
"""
import copy
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.utils import get_installed_path

from mmdet3d.registry import MODELS
from mmdet3d.utils import register_all_modules
from ..data_tools.synthetic_kitti import (CLASS_PRIORS, KITTI_IMAGE_SIZE,
                                          KITTI_P2)
from ..models.detectors import DepthDiscriminativeDetector
from ..models.detectors.depth_discriminative import \
    export_baseline_checkpoint
from ..testing import make_samples

__all__ = [
    'DEFAULT_CONFIG', 'load_model_cfg', 'synthetic_batch', 'interleaved',
    'medians', 'train_step_flops', 'measure_overhead', 'format_overhead'
]

DEFAULT_CONFIG = \
    'mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py'
# mmdet3d's KITTI labels: 0 Pedestrian, 1 Cyclist, 2 Car.
_LABEL_SIZES = {
    label: CLASS_PRIORS[name]['size']
    for label, name in enumerate(('Pedestrian', 'Cyclist', 'Car'))
}


def load_model_cfg(path: str) -> Config:
    """The model of a config file (or ``mmdet3d::rel/path.py``), without
    pretrained backbone weights."""
    if '::' in path:
        package, rel = path.split('::')
        path = osp.join(get_installed_path(package), '.mim', 'configs', rel)
    cfg = Config.fromfile(path).model
    if 'backbone' in cfg:
        cfg.backbone.init_cfg = None
    return cfg


def synthetic_batch(batch_size: int,
                    height: int,
                    width: int,
                    num_objects: int,
                    down_ratio: int,
                    seed: int = 0) -> Dict:
    """Random images and KITTI-like objects (cars, pedestrians, cyclists).

    KITTI's camera is scaled to the image size; objects stand 5 to 60 m
    ahead with their projected centres in the middle 80% of the width.

    Args:
        batch_size (int): Images.
        height (int): Image height, px.
        width (int): Image width, px.
        num_objects (int): Objects per image.
        down_ratio (int): SMOKE's ``AffineResize`` down ratio
            (``trans_mat``).
        seed (int): Seed of the images and objects. Defaults to 0.

    Returns:
        dict: ``inputs`` (``img``: uint8 images) and ``data_samples``, as
        a dataloader delivers them.
    """
    rng = np.random.default_rng(seed)
    sx, sy = width / KITTI_IMAGE_SIZE[0], height / KITTI_IMAGE_SIZE[1]
    fx, fy = float(KITTI_P2[0, 0] * sx), float(KITTI_P2[1, 1] * sy)
    cx, cy = float(KITTI_P2[0, 2] * sx), float(KITTI_P2[1, 2] * sy)
    cam2img = [[fx, 0., cx, 0.], [0., fy, cy, 0.], [0., 0., 1., 0.],
               [0., 0., 0., 1.]]
    imgs, objects = [], []
    for _ in range(batch_size):
        imgs.append(
            torch.from_numpy(
                rng.integers(0, 256, (3, height, width), dtype=np.uint8)))
        labels = rng.integers(0, 3, num_objects)
        z = rng.uniform(5., 60., num_objects)
        x = rng.uniform(-0.4, 0.4, num_objects) * z * width / cam2img[0][0]
        yaw = [rng.uniform(-np.pi, np.pi) for _ in range(num_objects)]
        objects.append([(x[i], 1.65, z[i], *_LABEL_SIZES[int(labels[i])],
                         yaw[i], int(labels[i])) for i in range(num_objects)])
    samples = make_samples(objects, cam2img, (height, width),
                           stride=down_ratio)
    return dict(inputs=dict(img=imgs), data_samples=samples)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def interleaved(fns: Dict[str, Callable[[], None]],
                iters: int,
                repeats: int,
                warmup: int,
                log: Callable[[str], None] = print
                ) -> Dict[str, Dict[str, List[float]]]:
    """Per-iteration wall and process-CPU seconds of each fn.

    The order of the fns alternates by repeat. Process CPU time (all threads
    of this process) is less sensitive than wall time to other processes
    competing for the cores.

    Args:
        fns (dict[str, Callable]): Name -> one iteration.
        iters (int): Timed iterations per fn and repeat.
        repeats (int): Interleaved repeats.
        warmup (int): Untimed iterations per fn first.
        log (Callable[[str], None]): One line per repeat. Defaults to print.

    Returns:
        dict: Name -> ``wall`` and ``cpu`` lists of seconds.
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
        log(f'  repeat {rep + 1}/{repeats}: ' + ', '.join(
            f"{n} {times[n]['wall'][-1]:.3f}s wall "
            f"{times[n]['cpu'][-1]:.3f}s cpu" for n in names))
    return times


def medians(times: Dict[str, Dict[str, List[float]]]) -> Dict[str, Dict]:
    """Median of every list of :func:`interleaved`'s result."""
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

    Args:
        model (nn.Module): The detector.
        batch (dict): A batch of :func:`synthetic_batch`.

    Returns:
        dict[str, int]: ``counted`` (aten), ``dcn`` (estimated) and
        ``total``.
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


def measure_overhead(config: str = DEFAULT_CONFIG,
                     iters: int = 2,
                     repeats: int = 3,
                     warmup: int = 1,
                     batch_size: int = 1,
                     height: int = 384,
                     width: int = 1280,
                     objects: int = 8,
                     down_ratio: int = 4,
                     metric: bool = False,
                     device: str = 'cpu',
                     flops: bool = False,
                     log: Callable[[str], None] = print) -> Dict:
    """Time the baseline and the wrapper side by side (see the module).

    Args:
        config (str): Baseline config (file or ``mmdet3d::rel/path``).
        iters (int): Timed iterations per model and repeat.
        repeats (int): Interleaved repeats.
        warmup (int): Untimed iterations per model first.
        batch_size (int): Images per batch.
        height (int): Input height, px.
        width (int): Input width, px.
        objects (int): Objects per image.
        down_ratio (int): SMOKE's ``AffineResize`` down ratio.
        metric (bool): Also enable ``metric_loss`` and
            ``dense_metric_loss``.
        device (str): Torch device.
        flops (bool): Also count the FLOPs of one training step each.
        log (Callable[[str], None]): Progress lines. Defaults to print.

    Returns:
        dict: Medians (``train_s``, ``infer_s``, ``aux_s``), ratios, the
        samples, ``flops`` (or None), ``params`` and the setting.
    """
    register_all_modules(init_default_scope=True)
    device = torch.device(device)
    cfg = load_model_cfg(config)

    torch.manual_seed(0)
    baseline = MODELS.build(copy.deepcopy(cfg)).to(device)
    aux = dict()
    if metric:
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
        baseline=_count(baseline),
        wrapper=_count(wrapper),
        exported=_count(fresh),
        exported_tensors=sum(v.numel()
                             for v in exported['state_dict'].values()),
        baseline_tensors=sum(v.numel()
                             for v in baseline.state_dict().values()))
    del fresh

    batch = synthetic_batch(batch_size, height, width, objects, down_ratio)
    models = dict(baseline=baseline, ddml=wrapper)
    optims = {
        name: OptimWrapper(torch.optim.Adam(model.parameters(), lr=2.5e-4))
        for name, model in models.items()
    }

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
        feat, stride = wrapper.aux_feature_map(
            wrapper.extract_feat(data['inputs']), data['inputs'])
        feat = feat.detach()

    def aux_step():
        f = feat.clone().requires_grad_(True)
        losses = wrapper.loss_auxiliary(f, stride, data['data_samples'])
        sum(losses.values()).backward()

    log(f'config {config}; input {batch_size}x3x{height}x{width}, '
        f'{objects} objects/image; feature map {tuple(feat.shape)} '
        f'(stride {stride[0]:g}); threads {torch.get_num_threads()}; '
        f'device {device}')
    log('training step (train_step) ...')
    train = interleaved(
        dict(baseline=train_fn('baseline'), ddml=train_fn('ddml')), iters,
        repeats, warmup, log)
    log('inference (test_step) ...')
    infer = interleaved(
        dict(baseline=test_fn('baseline'), ddml=test_fn('ddml')), iters,
        repeats, warmup, log)
    log('auxiliary losses alone (forward + backward) ...')
    aux_t = interleaved(dict(aux=aux_step), max(iters, 3), repeats, warmup,
                        log)

    counted: Optional[Dict] = None
    if flops:
        log('FLOPs of one training step ...')
        counted = dict(
            baseline=train_step_flops(baseline, batch),
            ddml=train_step_flops(wrapper, batch))
    med, med_inf = medians(train), medians(infer)
    med_aux = medians(aux_t)['aux']

    def ratio(m, kind):
        return m['ddml'][kind] / m['baseline'][kind]

    return dict(
        config=config,
        input=[batch_size, 3, height, width],
        objects_per_image=objects,
        threads=torch.get_num_threads(),
        device=str(device),
        iters=iters,
        repeats=repeats,
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
        flops=counted,
        params=params)


def format_overhead(results: Dict) -> str:
    """The summary lines of :func:`measure_overhead`'s result."""
    med, med_inf = results['train_s'], results['infer_s']
    med_aux, flops = results['aux_s'], results['flops']
    params = results['params']
    lines = [
        '== results (medians over '
        f"{results['repeats']}x{results['iters']} interleaved "
        'iterations) =='
    ]
    for label, m, r in (('train step', med, results['train_ratio']),
                        ('inference ', med_inf, results['infer_ratio'])):
        lines.append(
            f'{label} : baseline {m["baseline"]["wall"]:.3f}s wall '
            f'{m["baseline"]["cpu"]:.3f}s cpu | ddml '
            f'{m["ddml"]["wall"]:.3f}s wall {m["ddml"]["cpu"]:.3f}s cpu'
            f' | ratio {r["wall"]:.3f} wall, {r["cpu"]:.3f} cpu')
    frac = results['aux_fraction_of_baseline_step']
    lines.append(
        f'aux losses : {med_aux["wall"]:.4f}s wall '
        f'{med_aux["cpu"]:.4f}s cpu fwd+bwd = {100 * frac["wall"]:.2f}% '
        f'(wall), {100 * frac["cpu"]:.2f}% (cpu) of a baseline step')
    if flops is not None:
        extra = flops['ddml']['total'] / flops['baseline']['total'] - 1
        lines.append(
            f'train FLOPs: baseline {flops["baseline"]["total"] / 1e9:.1f}'
            f' G, ddml {flops["ddml"]["total"] / 1e9:.1f} G '
            f'(+{100 * extra:.2f}%; deformable convs estimated: '
            f'{flops["baseline"]["dcn"] / 1e9:.1f} G)')
    lines.append(
        f"parameters : baseline {params['baseline']:,}  wrapper "
        f"{params['wrapper']:,}  exported {params['exported']:,} "
        f"(state-dict elements {params['exported_tensors']:,} vs "
        f"{params['baseline_tensors']:,})")
    return '\n'.join(lines)
