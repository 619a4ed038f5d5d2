"""What DDML's additions cost: training step, inference, parameters.

:func:`measure_overhead` builds the baseline detector from a config
(default: mmdet3d's SMOKE) and a ``DepthDiscriminativeDetector`` around an
identical copy (the wrapper of a ``ddml_*`` config when one is given, else
the wrapper's defaults), then times, side by side in one process,
interleaved over several repeats (alternating which model goes first):

* a full training step (``train_step``: preprocessing, forward, backward,
  Adam update) on the same synthetic KITTI-like batch;
* inference (``test_step``) in eval mode;
* DDML's auxiliary losses alone (forward + backward on the feature map), a
  low-noise view of the overhead on a shared machine;

and counts the parameters of the baseline, the wrapper and the exported
baseline checkpoint (and optionally the FLOPs of a training step). No
pretrained weights are loaded (timing does not depend on them).

On a CUDA device the models, their optimizers and the batch live on the
GPU; every timed call is preceded and followed by
``torch.cuda.synchronize`` (so wall times cover the kernels, not just
their launch), and ``torch.cuda.max_memory_allocated`` gives each call's
peak memory above what was allocated before it (activations, gradients,
temporaries); the resident weights, buffers and Adam moments of each
model are reported apart. ``tools/benchmark_overhead.py`` is its command
line.
"""
import copy
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

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
    'DEFAULT_CONFIG', 'KITTI_LABELS', 'resolve_device', 'describe_device',
    'load_model_cfg', 'config_classes', 'synthetic_batch', 'interleaved',
    'medians', 'state_mib', 'train_step_flops', 'measure_overhead',
    'format_overhead'
]

DEFAULT_CONFIG = \
    'mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py'
#: mmdet3d's KITTI labels: 0 Pedestrian, 1 Cyclist, 2 Car.
KITTI_LABELS = ('Pedestrian', 'Cyclist', 'Car')
_MIB = 2**20


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    """The torch device to measure on, checked before anything is built.

    Args:
        device (str | torch.device): ``'cpu'``, ``'cuda'`` or
            ``'cuda:N'``.

    Returns:
        torch.device: With an explicit index for CUDA.

    Raises:
        ValueError: Neither a CPU nor a CUDA device.
        RuntimeError: A CUDA device asked for where torch sees none.
    """
    device = torch.device(device)
    if device.type not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got "
                         f"'{device}'.")
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            build = 'a CPU build' if torch.version.cuda is None else \
                f'built with CUDA {torch.version.cuda}'
            raise RuntimeError(
                f'CUDA is not available: torch {torch.__version__} ({build}) '
                f"sees no CUDA device for '{device}'; run on a CUDA machine "
                "or measure on the CPU (device 'cpu').")
        if device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
    return device


def describe_device(device: torch.device) -> str:
    """One line naming the device measured on (GPU model, memory, CUDA)."""
    if device.type != 'cuda':
        return (f'CPU, torch {torch.__version__} with '
                f'{torch.get_num_threads()} thread(s)')
    props = torch.cuda.get_device_properties(device)
    return (f'{torch.cuda.get_device_name(device)} '
            f'({props.total_memory / 2**30:.0f} GiB, compute capability '
            f'{props.major}.{props.minor}), CUDA {torch.version.cuda}, '
            f'torch {torch.__version__}')


def _config_path(path: str) -> str:
    if '::' in path:
        package, rel = path.split('::')
        path = osp.join(get_installed_path(package), '.mim', 'configs', rel)
    return path


def load_model_cfg(path: str) -> Config:
    """The model of a config file (or ``mmdet3d::rel/path.py``), without
    pretrained backbone weights (of the wrapped detector too, for a
    ``DepthDiscriminativeDetector`` config)."""
    cfg = Config.fromfile(_config_path(path)).model
    detector = cfg.get('detector', cfg)
    if 'backbone' in detector:
        detector.backbone.init_cfg = None
    return cfg


def config_classes(path: str) -> Sequence[str]:
    """The class names a config trains (``metainfo.classes`` of its
    training set, else ``class_names``, else KITTI's three)."""
    cfg = Config.fromfile(_config_path(path))
    try:
        return tuple(cfg.train_dataloader.dataset.metainfo.classes)
    except AttributeError:
        return tuple(cfg.get('class_names', KITTI_LABELS))


def synthetic_batch(batch_size: int,
                    height: int,
                    width: int,
                    num_objects: int,
                    down_ratio: int,
                    seed: int = 0,
                    classes: Sequence[str] = KITTI_LABELS) -> Dict:
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
        classes (Sequence[str]): The detector's classes, in label order
            (each a key of ``CLASS_PRIORS``). Defaults to mmdet3d's KITTI
            labels (Pedestrian, Cyclist, Car).

    Returns:
        dict: ``inputs`` (``img``: uint8 images) and ``data_samples``, as
        a dataloader delivers them.
    """
    unknown = [name for name in classes if name not in CLASS_PRIORS]
    if unknown:
        raise ValueError(f'synthetic_batch: no size prior for classes '
                         f'{unknown}; known: {sorted(CLASS_PRIORS)}.')
    sizes = [CLASS_PRIORS[name]['size'] for name in classes]
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
        labels = rng.integers(0, len(classes), num_objects)
        z = rng.uniform(5., 60., num_objects)
        x = rng.uniform(-0.4, 0.4, num_objects) * z * width / cam2img[0][0]
        yaw = [rng.uniform(-np.pi, np.pi) for _ in range(num_objects)]
        objects.append([(x[i], 1.65, z[i], *sizes[int(labels[i])],
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
                log: Callable[[str], None] = print,
                device: Union[str, torch.device] = 'cpu'
                ) -> Dict[str, Dict[str, List[float]]]:
    """Per-iteration wall and process-CPU seconds of each fn.

    The order of the fns alternates by repeat. Process CPU time (all threads
    of this process) is less sensitive than wall time to other processes
    competing for the cores. On a CUDA device each call is bracketed by
    ``torch.cuda.synchronize`` and its peak memory is recorded.

    Args:
        fns (dict[str, Callable]): Name -> one iteration.
        iters (int): Timed iterations per fn and repeat.
        repeats (int): Interleaved repeats.
        warmup (int): Untimed iterations per fn first.
        log (Callable[[str], None]): One line per repeat. Defaults to print.
        device (str | torch.device): Where the fns run. Defaults to
            ``'cpu'``.

    Returns:
        dict: Name -> ``wall`` and ``cpu`` lists of seconds, and on CUDA
        ``peak_mib``: per call, ``torch.cuda.max_memory_allocated`` during
        the call minus the memory allocated before it, MiB.
    """
    device = torch.device(device)
    cuda = device.type == 'cuda'
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times = {name: dict(wall=[], cpu=[]) for name in names}
    if cuda:
        for name in names:
            times[name]['peak_mib'] = []
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            for _ in range(iters):
                if cuda:
                    torch.cuda.synchronize(device)
                    torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device)
                wall, cpu = time.perf_counter(), time.process_time()
                fns[name]()
                if cuda:
                    torch.cuda.synchronize(device)
                times[name]['cpu'].append(time.process_time() - cpu)
                times[name]['wall'].append(time.perf_counter() - wall)
                if cuda:
                    times[name]['peak_mib'].append(
                        (torch.cuda.max_memory_allocated(device) - before) /
                        _MIB)
        log(f'  repeat {rep + 1}/{repeats}: ' + ', '.join(
            f"{n} {times[n]['wall'][-1]:.3f}s wall "
            f"{times[n]['cpu'][-1]:.3f}s cpu" for n in names))
    return times


def medians(times: Dict[str, Dict[str, List[float]]]) -> Dict[str, Dict]:
    """Median of every list of :func:`interleaved`'s result (the maximum
    of ``peak_mib``: a peak is what has to fit)."""
    return {
        name: {
            kind: max(v) if kind == 'peak_mib' else statistics.median(v)
            for kind, v in t.items()
        }
        for name, t in times.items()
    }


def state_mib(model: torch.nn.Module,
              optimizer: Optional[torch.optim.Optimizer] = None) -> float:
    """Memory a model keeps between training steps: its parameters,
    buffers and the optimizer's state tensors (Adam's moments), MiB."""
    tensors = list(model.parameters()) + list(model.buffers())
    if optimizer is not None:
        tensors += [
            v for state in optimizer.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)
        ]
    return sum(t.numel() * t.element_size() for t in tensors) / _MIB


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


def _batch_to(batch: Dict, device: torch.device) -> Dict:
    """The batch with its images and ground truth on ``device``."""
    return dict(
        inputs=dict(img=[img.to(device) for img in batch['inputs']['img']]),
        data_samples=[s.to(device) for s in batch['data_samples']])


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
                     device: Union[str, torch.device] = 'cpu',
                     flops: bool = False,
                     log: Callable[[str], None] = print,
                     ddml_config: Optional[str] = None) -> Dict:
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
        device (str | torch.device): ``'cpu'`` or ``'cuda[:N]'``; CUDA
            times are synchronised and come with peak memory.
        flops (bool): Also count the FLOPs of one training step each.
        log (Callable[[str], None]): Progress lines. Defaults to print.
        ddml_config (str, optional): A ``DepthDiscriminativeDetector``
            config wrapping ``config``'s detector (e.g. the ``ddml_*``
            sibling of a baseline config): its wrapper is timed instead
            of the wrapper's defaults around ``config``.

    Returns:
        dict: Medians (``train_s``, ``infer_s``, ``aux_s``; on CUDA each
        with ``peak_mib``), ratios, the samples, ``state_mib`` (weights,
        buffers, Adam moments per model), ``flops`` (or None),
        ``params``, ``machine`` and the setting.

    Raises:
        RuntimeError: CUDA asked for where it is not available, or a
            ``ddml_config`` whose wrapped detector differs from
            ``config``'s.
    """
    device = resolve_device(device)
    register_all_modules(init_default_scope=True)
    cfg = load_model_cfg(config)
    classes = config_classes(config)

    torch.manual_seed(0)
    baseline = MODELS.build(copy.deepcopy(cfg)).to(device)
    if ddml_config is None:
        aux = dict()
        if metric:
            aux.update(
                metric_loss=dict(type='MultiRangeDepthMetricLoss'),
                dense_metric_loss=dict(type='MultiRangeDepthMetricLoss'))
        wrapper = DepthDiscriminativeDetector(detector=copy.deepcopy(cfg),
                                              **aux)
    else:
        ddml_cfg = load_model_cfg(ddml_config)
        if metric:
            ddml_cfg.update(
                metric_loss=dict(type='MultiRangeDepthMetricLoss'),
                dense_metric_loss=dict(type='MultiRangeDepthMetricLoss'))
        wrapper = MODELS.build(ddml_cfg)
        if not isinstance(wrapper, DepthDiscriminativeDetector):
            raise TypeError(
                f'ddml_config {ddml_config}: its model is a '
                f'{type(wrapper).__name__}, not a '
                'DepthDiscriminativeDetector; give a ddml_* config.')
    wrapper = wrapper.to(device)
    try:
        wrapper.detector.load_state_dict(baseline.state_dict())
    except RuntimeError as err:
        raise RuntimeError(
            f'ddml_config {ddml_config} does not wrap the detector of '
            f'{config} (their weights differ): {err}') from err

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

    batch = _batch_to(
        synthetic_batch(batch_size, height, width, objects, down_ratio,
                        classes=classes), device)
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

    machine = describe_device(device)
    log(f'config {config}'
        f'{"" if ddml_config is None else " vs " + ddml_config}; input '
        f'{batch_size}x3x{height}x{width}, {objects} objects/image '
        f'({", ".join(classes)}); feature map {tuple(feat.shape)} '
        f'(stride {stride[0]:g}); threads {torch.get_num_threads()}; '
        f'device {device}: {machine}')
    log('training step (train_step) ...')
    train = interleaved(
        dict(baseline=train_fn('baseline'), ddml=train_fn('ddml')), iters,
        repeats, warmup, log, device)
    log('inference (test_step) ...')
    infer = interleaved(
        dict(baseline=test_fn('baseline'), ddml=test_fn('ddml')), iters,
        repeats, warmup, log, device)
    log('auxiliary losses alone (forward + backward) ...')
    aux_t = interleaved(dict(aux=aux_step), max(iters, 3), repeats, warmup,
                        log, device)
    state = {
        name: state_mib(model, optims[name].optimizer)
        for name, model in models.items()
    }

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

    def ratios(m):
        kinds = ('wall', 'cpu', 'peak_mib') if device.type == 'cuda' \
            else ('wall', 'cpu')
        return {kind: ratio(m, kind) for kind in kinds}

    return dict(
        config=config,
        ddml_config=ddml_config,
        classes=list(classes),
        input=[batch_size, 3, height, width],
        objects_per_image=objects,
        threads=torch.get_num_threads(),
        device=str(device),
        machine=machine,
        iters=iters,
        repeats=repeats,
        warmup=warmup,
        train_s=med,
        train_ratio=ratios(med),
        train_samples=train,
        infer_s=med_inf,
        infer_ratio=ratios(med_inf),
        infer_samples=infer,
        aux_s=med_aux,
        aux_fraction_of_baseline_step=dict(
            wall=med_aux['wall'] / med['baseline']['wall'],
            cpu=med_aux['cpu'] / med['baseline']['cpu']),
        state_mib=state,
        flops=counted,
        params=params)


def format_overhead(results: Dict) -> str:
    """The summary lines of :func:`measure_overhead`'s result."""
    med, med_inf = results['train_s'], results['infer_s']
    med_aux, flops = results['aux_s'], results['flops']
    params = results['params']
    cuda = 'peak_mib' in med['baseline']
    timing = 'CUDA-synchronised ' if cuda else ''
    lines = [
        f"== {results['config']}"
        + ('' if results.get('ddml_config') is None else
           f" vs {results['ddml_config']}") +
        f" on {results['device']} ({results['machine']}), input "
        f"{'x'.join(map(str, results['input']))}: {timing}medians over "
        f"{results['repeats']}x{results['iters']} interleaved "
        'iterations =='
    ]
    for label, m, r in (('train step', med, results['train_ratio']),
                        ('inference ', med_inf, results['infer_ratio'])):
        lines.append(
            f'{label} : baseline {m["baseline"]["wall"]:.3f}s wall '
            f'{m["baseline"]["cpu"]:.3f}s cpu | ddml '
            f'{m["ddml"]["wall"]:.3f}s wall {m["ddml"]["cpu"]:.3f}s cpu'
            f' | ratio {r["wall"]:.3f} wall, {r["cpu"]:.3f} cpu')
        if cuda:
            lines.append(
                f'{" " * len(label)} : peak memory above resident: '
                f'baseline {m["baseline"]["peak_mib"]:.1f} MiB | ddml '
                f'{m["ddml"]["peak_mib"]:.1f} MiB | ratio '
                f'{r["peak_mib"]:.3f}')
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
    state = results['state_mib']
    lines.append(
        f'resident   : weights, buffers, Adam moments: baseline '
        f'{state["baseline"]:.1f} MiB | ddml {state["ddml"]:.1f} MiB')
    lines.append(
        f"parameters : baseline {params['baseline']:,}  wrapper "
        f"{params['wrapper']:,}  exported {params['exported']:,} "
        f"(state-dict elements {params['exported_tensors']:,} vs "
        f"{params['baseline_tensors']:,})")
    return '\n'.join(lines)
