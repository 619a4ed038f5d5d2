"""Pictures of detections: evaluated images and bird's-eye views with ground
truth and the boxes of several models, and depth error against distance,
for the demo's KITTI- and Waymo-format data (:func:`frame_from_info`).

The boxes are drawn with mmdet3d's own ``Det3DLocalVisualizer``
(``draw_proj_bboxes_3d`` on the image, ``draw_bev_bboxes`` on a
bird's-eye-view canvas); matplotlib composes the panels into one figure.
"""
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .runs import demo_dataset

__all__ = ['MODEL_COLOURS', 'GT_COLOUR', 'detection_gallery',
           'plot_depth_error_vs_distance', 'binned_depth_errors',
           'frame_from_info']

#: Ground truth is drawn in this colour (RGB 0-255), models in the next.
GT_COLOUR = (40, 200, 60)
MODEL_COLOURS = [(30, 110, 255), (235, 50, 40), (250, 170, 20),
                 (170, 60, 220)]


#: [(boxes_3d, (r, g, b))]: sets of boxes and the colour to draw them in
_Boxes = Sequence[Tuple[object, Tuple[int, int, int]]]


def _visualizer():
    import time

    from mmdet3d.visualization import Det3DLocalVisualizer
    return Det3DLocalVisualizer(name=f'ddml_gallery_{time.time_ns()}')


def _draw_image_panel(vis, image: np.ndarray, cam2img: np.ndarray,
                      boxes: '_Boxes') -> np.ndarray:
    """Projected 3D boxes over ``image``: ``boxes`` = [(boxes_3d, rgb)]."""
    vis.set_image(image)
    h, w = image.shape[:2]
    for bboxes_3d, colour in boxes:
        if len(bboxes_3d) == 0:
            continue
        # keep boxes in front of the camera (behind-camera corners
        # project to nonsense)
        keep = bboxes_3d.corners[..., 2].min(dim=1).values > 0.1
        bboxes_3d = bboxes_3d[keep]
        if len(bboxes_3d) == 0:
            continue
        vis.draw_proj_bboxes_3d(
            bboxes_3d, dict(cam2img=cam2img),
            edge_colors=[colour] * len(bboxes_3d), line_widths=1.2,
            alpha=0.15)
    # boxes reaching outside the image must not widen the axes
    vis.ax_save.set_xlim(0, w)
    vis.ax_save.set_ylim(h, 0)
    out = vis.get_image()
    return out[:h, :w]


def _draw_bev_panel(vis, boxes: _Boxes,
                    max_depth: float, px_per_m: float,
                    half_width: Optional[float] = None) -> np.ndarray:
    """Bird's-eye view, camera at the bottom centre, z up, x to the right:
    ``max_depth`` metres deep and ``+-half_width`` wide (default
    ``max_depth / 2``)."""
    half_width = max_depth / 2 if half_width is None else half_width
    canvas = np.full((int(round(max_depth * px_per_m)),
                      int(round(2 * half_width * px_per_m)), 3), 255,
                     np.uint8)
    vis.set_image(canvas)  # sizes the visualizer's figure to the canvas
    vis.set_bev_image(bev_image=canvas)
    for k, (bboxes_3d, colour) in enumerate(boxes):
        if len(bboxes_3d) == 0:
            continue
        # the first set (ground truth) wide, so that it shows under a
        # prediction drawn on top of it
        vis.draw_bev_bboxes(bboxes_3d, scale=px_per_m,
                            edge_colors=[colour] * len(bboxes_3d),
                            line_widths=4 if k == 0 else 1.5)
    return vis.get_image()


def detection_gallery(frames: Sequence[Mapping],
                      model_names: Sequence[str],
                      out_path: str,
                      score_thr: float = 0.0,
                      max_depth: float = 60.0,
                      half_width: float = 20.0,
                      px_per_m: float = 8.0,
                      title: str = 'val frames') -> str:
    """Per frame, the image with ground truth and each model's projected 3D
    boxes (one panel per model, stacked) and, beside them, a bird's-eye
    view with all of them.

    Args:
        frames (Sequence[Mapping]): Per frame ``image`` ((H, W, 3) uint8
            RGB), ``cam2img`` ((3, 3) or (4, 4) array), ``gt``
            (``CameraInstance3DBoxes``), ``preds`` (model name ->
            ``(CameraInstance3DBoxes, scores (N, ))``) and ``title``.
        model_names (Sequence[str]): Models to draw, in panel order (at
            most four).
        out_path (str): PNG to write.
        score_thr (float): Detections below this score are not drawn.
            Defaults to 0 (every detection the model returns, after its
            own test-time score threshold).
        max_depth (float): Depth range of the bird's-eye view, metres.
            Defaults to 60.
        half_width (float): Lateral range of the bird's-eye view, +-metres.
            Defaults to 20.
        px_per_m (float): Bird's-eye-view resolution. Defaults to 8.
        title (str): What the frames are (the figure's title starts with
            it). Defaults to 'val frames'.

    Returns:
        str: ``out_path``.
    """
    if len(model_names) > len(MODEL_COLOURS):
        raise ValueError(f'at most {len(MODEL_COLOURS)} models can be '
                         f'drawn, got {list(model_names)}')
    from .plots import _plt, _save
    plt = _plt()
    vis = _visualizer()
    colours = dict(zip(model_names, MODEL_COLOURS))
    m = len(model_names)
    img_h, img_w = frames[0]['image'].shape[:2] if frames else (1, 1)
    img_in = 6.0  # width of an image panel, inches
    row_in = img_in * img_h / img_w + 0.3
    bev_in = (row_in * m - 0.3) * 2 * half_width / max_depth
    fig = plt.figure(figsize=(img_in + bev_in + 0.4,
                              row_in * m * len(frames) + 0.9))
    grid = fig.add_gridspec(m * len(frames), 2,
                            width_ratios=[img_in, bev_in])
    for f, frame in enumerate(frames):
        gt = frame['gt']
        shown = []
        for k, name in enumerate(model_names):
            boxes, scores = frame['preds'][name]
            if len(boxes):
                boxes = boxes[torch_bool(np.asarray(scores) >= score_thr)]
            shown.append((boxes, colours[name]))
            panel = _draw_image_panel(vis, frame['image'], frame['cam2img'],
                                      [(gt, GT_COLOUR),
                                       (boxes, colours[name])])
            ax = fig.add_subplot(grid[f * m + k, 0])
            ax.imshow(panel)
            ax.set_axis_off()
            ax.set_title(f'{frame.get("title", "")}: {name} '
                         f'({len(boxes)} boxes) and ground truth',
                         fontsize=8)
        bev = _draw_bev_panel(vis, [(gt, GT_COLOUR)] + shown, max_depth,
                              px_per_m, half_width)
        ax = fig.add_subplot(grid[f * m:(f + 1) * m, 1])
        ax.imshow(bev)
        ax.set_xticks([0, bev.shape[1] / 2, bev.shape[1]],
                      [f'{-half_width:g}', '0', f'{half_width:g} m'],
                      fontsize=6)
        ax.set_yticks([0, bev.shape[0] / 2, bev.shape[0]],
                      [f'{max_depth:g} m', f'{max_depth / 2:g}', '0'],
                      fontsize=6)
        ax.set_title('bird\'s-eye view', fontsize=8)
    handles = [plt.Line2D([], [], color=np.array(GT_COLOUR) / 255, lw=2,
                          label='ground truth')]
    handles += [plt.Line2D([], [], color=np.array(colours[n]) / 255, lw=2,
                           label=n) for n in model_names]
    fig.legend(handles=handles, loc='lower center', ncol=len(handles),
               fontsize=8, frameon=False)
    shown_thr = f' with score >= {score_thr:g}' if score_thr > 0 else ''
    fig.suptitle(f'{title}: projected 3D boxes{shown_thr} and '
                 'bird\'s-eye view', fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return _save(fig, out_path)


def torch_bool(mask: np.ndarray):
    """A numpy boolean mask as a torch one (to index mmdet3d boxes)."""
    import torch
    return torch.from_numpy(np.asarray(mask, dtype=bool))


def binned_depth_errors(z_gt: np.ndarray, z_pred: np.ndarray,
                        edges: Sequence[float]) -> Dict[str, np.ndarray]:
    """Mean and median absolute depth error per ground-truth depth bin.

    Args:
        z_gt (np.ndarray): (N, ) ground-truth depths, metres.
        z_pred (np.ndarray): (N, ) predicted depths, metres.
        edges (Sequence[float]): Bin edges (K + 1), metres; the last bin is
            closed on the right.

    Returns:
        dict: ``centre`` (K, ), ``mean`` (K, ), ``median`` (K, ) in metres
        (NaN for an empty bin) and ``count`` (K, ).
    """
    z_gt = np.asarray(z_gt, dtype=np.float64).reshape(-1)
    err = np.abs(np.asarray(z_pred, dtype=np.float64).reshape(-1) - z_gt)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f'edges must be increasing with at least two '
                         f'values, got {edges.tolist()}')
    idx = np.clip(np.searchsorted(edges, z_gt, side='right') - 1, 0,
                  edges.size - 2)
    inside = (z_gt >= edges[0]) & (z_gt <= edges[-1])
    k = edges.size - 1
    mean, median, count = (np.full(k, np.nan), np.full(k, np.nan),
                           np.zeros(k, np.int64))
    for b in range(k):
        e = err[inside & (idx == b)]
        count[b] = e.size
        if e.size:
            mean[b], median[b] = e.mean(), np.median(e)
    return dict(centre=0.5 * (edges[:-1] + edges[1:]), mean=mean,
                median=median, count=count)


def plot_depth_error_vs_distance(
        matches: Mapping[str, Tuple[np.ndarray, np.ndarray]],
        out_path: str,
        edges: Optional[Sequence[float]] = None,
        title: str = 'depth error of matched detections') -> str:
    """|z_pred - z_gt| against z_gt for several models: points and the
    binned mean.

    Args:
        matches (Mapping[str, tuple]): Model name -> ``(z_gt, z_pred)``
            arrays of its matched detections, metres.
        out_path (str): PNG to write.
        edges (Sequence[float], optional): Depth bins of the mean curve.
            Defaults to 10 m bins up to the largest depth.
        title (str): Figure title.

    Returns:
        str: ``out_path``.
    """
    from .plots import _plt, _save
    plt = _plt()
    all_z = np.concatenate([np.asarray(z, dtype=np.float64).reshape(-1)
                            for z, _ in matches.values()] + [np.zeros(1)])
    if edges is None:
        top = max(10.0, float(np.ceil(all_z.max() / 10.0) * 10.0))
        edges = np.arange(0.0, top + 1e-9, 10.0)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, (z_gt, z_pred)), colour in zip(matches.items(),
                                              MODEL_COLOURS):
        c = np.array(colour) / 255
        z_gt, z_pred = np.asarray(z_gt), np.asarray(z_pred)
        ax.scatter(z_gt, np.abs(z_pred - z_gt), s=6, color=c, alpha=0.35,
                   edgecolors='none')
        b = binned_depth_errors(z_gt, z_pred, edges)
        ok = b['count'] > 0
        ax.plot(b['centre'][ok], b['mean'][ok], '-o', color=c, ms=4,
                label=f'{name}: mean per {edges[1] - edges[0]:g} m bin '
                f'({z_gt.size} matched)')
    ax.set_xlabel('ground-truth depth z (m)')
    ax.set_ylabel('|z_pred - z_gt| (m)')
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_path)


def frame_from_info(info: Mapping, data_root: str,
                    split: str = 'val', dataset: str = 'kitti') -> Dict:
    """Image, camera matrix and ground-truth boxes of one mmdet3d v2 info.

    Args:
        info (Mapping): One entry of an info file's ``data_list``.
        data_root (str): Dataset root (images under the split's folder:
            KITTI's ``training/image_2`` or ``testing/image_2`` for
            ``test``; Waymo's ``training/image_0`` or ``testing/image_0``).
        split (str): The info split the entry comes from. Defaults to
            'val'.
        dataset (str): The format (a key of
            :data:`ddml.analysis.runs.DEMO_DATASETS`): which camera, image
            folder and labels. Defaults to 'kitti'.

    Returns:
        dict: ``image``, ``cam2img``, ``gt`` (``CameraInstance3DBoxes``:
        KITTI's ``instances``, Waymo's ``cam_instances`` of the camera),
        ``sample_idx`` and ``title`` (the image file, or Waymo's
        ``context_name/timestamp``). DontCare objects (label -1) are left
        out.
    """
    import torch
    from PIL import Image

    from mmdet3d.structures import CameraInstance3DBoxes
    spec = demo_dataset(dataset)
    cam = info['images'][spec.cam_key]
    path = cam['img_path']
    if not osp.isabs(path):
        path = osp.join(data_root, spec.image_dir(split), osp.basename(path))
    image = np.asarray(Image.open(path).convert('RGB'))
    boxes: List[List[float]] = [
        inst['bbox_3d'] for inst in spec.camera_instances(info)
    ]
    gt = CameraInstance3DBoxes(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 7))
    # (3, 4) (Waymo's infos) -> (4, 4): mmdet3d's drawing takes 3x3 or 4x4
    cam2img = np.asarray(cam['cam2img'], dtype=np.float64)
    if cam2img.shape == (3, 4):
        cam2img = np.vstack([cam2img, [0.0, 0.0, 0.0, 1.0]])
    return dict(image=image, cam2img=cam2img, gt=gt,
                sample_idx=info.get('sample_idx'),
                title=spec.frame_title(info))
