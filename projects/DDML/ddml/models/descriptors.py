"""Object descriptors: pooled features read at projected 3D centres.

DDML attaches its metric losses to one feature map of the wrapped detector.
Every ground-truth object contributes one descriptor: the ``k x k`` average
of that map (stride 1, zero padding ``k // 2``, padded zeros counted as in
:class:`torch.nn.AvgPool2d`'s default) at the cell that holds the object's
projected 3D centre. The descriptor is paired with the object's depth.

Everything here is plain PyTorch plus :mod:`mmengine.dist`, so it can be
used (and tested) without building a detector.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor

from .defaults import DESCRIPTOR_POOL, MAX_DEPTH, MIN_DEPTH

__all__ = [
    'ObjectDescriptors', 'pool_descriptor_map', 'gather_pooled_at_cells',
    'infer_feature_stride', 'centers_to_cells', 'select_objects',
    'collect_object_descriptors', 'gather_across_processes',
    'gather_object_descriptors'
]


class ObjectDescriptors(NamedTuple):
    """Descriptors of the kept objects of a batch, one row per object.

    Attributes:
        descriptors (Tensor): Pooled features, shape (N, C).
        depths (Tensor): Object depths in metres, shape (N, ).
        image_ids (Tensor): Index of the image each object comes from,
            shape (N, ), int64. After :func:`gather_object_descriptors` the
            index is global (unique across processes).
        labels (Tensor): Class labels, shape (N, ), int64.
    """
    descriptors: Tensor
    depths: Tensor
    image_ids: Tensor
    labels: Tensor

    @property
    def num_objects(self) -> int:
        return self.depths.shape[0]


def _check_kernel_size(kernel_size: int) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or \
            kernel_size % 2 == 0:
        raise ValueError('descriptor_pool (the pooling kernel size) must be '
                         f'a positive odd integer, got {kernel_size!r}; an '
                         'even kernel would shift the window off the centre')


def pool_descriptor_map(feat: Tensor,
                        kernel_size: int = DESCRIPTOR_POOL) -> Tensor:
    """Dense ``k x k`` average pooling of a feature map.

    The reference definition of a descriptor map: stride 1, zero padding
    ``k // 2``, padded zeros counted in the average (``count_include_pad``,
    the default of :class:`torch.nn.AvgPool2d`).

    Args:
        feat (Tensor): Feature map, shape (B, C, H, W).
        kernel_size (int): Odd pooling window size ``k``. Defaults to
            ``defaults.DESCRIPTOR_POOL``.

    Returns:
        Tensor: Pooled map, shape (B, C, H, W).
    """
    _check_kernel_size(kernel_size)
    return F.avg_pool2d(
        feat, kernel_size, stride=1, padding=kernel_size // 2,
        count_include_pad=True)


def gather_pooled_at_cells(feat: Tensor,
                           image_ids: Tensor,
                           rows: Tensor,
                           cols: Tensor,
                           kernel_size: int = DESCRIPTOR_POOL) -> Tensor:
    """Read the ``k x k``-pooled feature map at a few cells.

    Equal to ``pool_descriptor_map(feat, k)[image_ids, :, rows, cols]`` but
    only the ``N * k * k`` needed values are touched, instead of pooling the
    whole map.

    Args:
        feat (Tensor): Feature map, shape (B, C, H, W).
        image_ids (Tensor): Image index of each cell, shape (N, ), int64.
        rows (Tensor): Row (y) of each cell, shape (N, ), in [0, H).
        cols (Tensor): Column (x) of each cell, shape (N, ), in [0, W).
        kernel_size (int): Odd pooling window size ``k``. Defaults to
            ``defaults.DESCRIPTOR_POOL``.

    Returns:
        Tensor: Descriptors, shape (N, C), same dtype as ``feat``.
    """
    _check_kernel_size(kernel_size)
    _, num_channels, height, width = feat.shape
    if image_ids.numel() == 0:
        return feat.new_zeros((0, num_channels))
    half = kernel_size // 2
    offsets = torch.arange(-half, half + 1, device=feat.device)
    win_rows = rows[:, None] + offsets  # (N, k)
    win_cols = cols[:, None] + offsets  # (N, k)
    row_ok = (win_rows >= 0) & (win_rows < height)
    col_ok = (win_cols >= 0) & (win_cols < width)
    win_rows = win_rows.clamp(0, height - 1)
    win_cols = win_cols.clamp(0, width - 1)
    # Advanced indices separated by a slice: result is (N, k, k, C).
    windows = feat[image_ids[:, None, None], :, win_rows[:, :, None],
                   win_cols[:, None, :]]
    inside = (row_ok[:, :, None] & col_ok[:, None, :]).to(feat.dtype)
    summed = (windows * inside[..., None]).sum(dim=(1, 2))
    return summed / float(kernel_size * kernel_size)


def infer_feature_stride(input_hw: Sequence[int],
                         feat_hw: Sequence[int]) -> Tuple[float, float]:
    """Stride of a feature map relative to the batch input.

    Args:
        input_hw (Sequence[int]): Height and width of the (padded) batch
            input, in pixels.
        feat_hw (Sequence[int]): Height and width of the feature map.

    Returns:
        tuple[float, float]: Stride along y and along x, in input pixels per
        cell (exactly 4.0 for SMOKE, 8.0 / 16.0 / ... for FPN levels when the
        input is padded to a multiple of 32).
    """
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    f_h, f_w = int(feat_hw[0]), int(feat_hw[1])
    if min(in_h, in_w, f_h, f_w) <= 0:
        raise ValueError(f'cannot infer the stride of a {f_h}x{f_w} feature '
                         f'map for a {in_h}x{in_w} input')
    return in_h / f_h, in_w / f_w


def centers_to_cells(
        centers_2d: Tensor, stride: Tuple[float, float],
        feat_hw: Sequence[int]) -> Tuple[Tensor, Tensor, Tensor]:
    """Integer feature cells of points given in input-image pixels.

    Args:
        centers_2d (Tensor): Points (x, y) in input pixels, shape (N, 2).
        stride (tuple[float, float]): Stride (y, x) of the map.
        feat_hw (Sequence[int]): Height and width of the map.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``rows`` and ``cols`` (int64, shape
        (N, ), ``floor(coordinate / stride)``, clamped into the map) and
        ``inside`` (bool, shape (N, )), False for points off the map or not
        finite.
    """
    height, width = int(feat_hw[0]), int(feat_hw[1])
    centers_2d = centers_2d.to(torch.float32)
    cols_f = torch.floor(centers_2d[:, 0] / stride[1])
    rows_f = torch.floor(centers_2d[:, 1] / stride[0])
    inside = torch.isfinite(cols_f) & torch.isfinite(rows_f) & \
        (cols_f >= 0) & (cols_f < width) & (rows_f >= 0) & (rows_f < height)
    cols = torch.nan_to_num(cols_f, nan=0.).clamp(0, width - 1).long()
    rows = torch.nan_to_num(rows_f, nan=0.).clamp(0, height - 1).long()
    return rows, cols, inside


def select_objects(depths: Tensor,
                   labels: Optional[Tensor],
                   min_depth: float = MIN_DEPTH,
                   max_depth: float = MAX_DEPTH,
                   ignore_classes: Sequence[int] = ()) -> Tensor:
    """Objects kept for metric learning by depth range and class.

    Args:
        depths (Tensor): Depths in metres, shape (N, ).
        labels (Tensor, optional): Class labels, shape (N, ).
        min_depth (float): Smallest kept depth (inclusive). Defaults to
            ``defaults.MIN_DEPTH``.
        max_depth (float): Largest kept depth (inclusive). Defaults to
            ``defaults.MAX_DEPTH``.
        ignore_classes (Sequence[int]): Labels to drop. Defaults to ().

    Returns:
        Tensor: Bool keep mask, shape (N, ). Non-finite depths are dropped.
    """
    depths = depths.to(torch.float32)
    keep = torch.isfinite(depths) & (depths >= min_depth) & \
        (depths <= max_depth)
    if labels is not None and len(ignore_classes) > 0:
        ignored = torch.as_tensor(
            list(ignore_classes), dtype=labels.dtype, device=labels.device)
        keep &= ~torch.isin(labels, ignored)
    return keep


def _instance_field(instances, name: str) -> Optional[Tensor]:
    value = instances.get(name, None) if hasattr(instances, 'get') else \
        getattr(instances, name, None)
    if value is not None and not isinstance(value, Tensor):
        value = torch.as_tensor(value)
    return value


def collect_object_descriptors(feat: Tensor,
                               batch_gt_instances_3d: Sequence,
                               stride: Tuple[float, float],
                               kernel_size: int = DESCRIPTOR_POOL,
                               min_depth: float = MIN_DEPTH,
                               max_depth: float = MAX_DEPTH,
                               ignore_classes: Sequence[int] = ()
                               ) -> ObjectDescriptors:
    """One descriptor per kept ground-truth object of a batch.

    An object is kept when its projected 3D centre falls on the map, its
    depth is finite and in ``[min_depth, max_depth]``, and its class is not
    in ``ignore_classes``.

    Args:
        feat (Tensor): Feature map, shape (B, C, H, W).
        batch_gt_instances_3d (Sequence[:obj:`InstanceData`]): Per image,
            ``centers_2d`` (N_i, 2) in input pixels, ``depths`` (N_i, ) in
            metres and optionally ``labels_3d`` (N_i, ).
        stride (tuple[float, float]): Stride (y, x) of ``feat`` relative to
            the batch input, see :func:`infer_feature_stride`.
        kernel_size (int): Odd pooling window. Defaults to
            ``defaults.DESCRIPTOR_POOL``.
        min_depth (float): In metres. Defaults to ``defaults.MIN_DEPTH``.
        max_depth (float): In metres. Defaults to ``defaults.MAX_DEPTH``.
        ignore_classes (Sequence[int]): Labels to drop. Defaults to ().

    Returns:
        :obj:`ObjectDescriptors`: Descriptors (N, C) with the dtype of
        ``feat``, depths (N, ) float32, image ids and labels.
    """
    if len(batch_gt_instances_3d) != feat.shape[0]:
        raise ValueError(f'{len(batch_gt_instances_3d)} data samples for a '
                         f'feature map of batch size {feat.shape[0]}')
    device = feat.device
    feat_hw = feat.shape[-2:]
    all_ids, all_rows, all_cols, all_depths, all_labels = [], [], [], [], []
    for img_id, instances in enumerate(batch_gt_instances_3d):
        centers = _instance_field(instances, 'centers_2d')
        depths = _instance_field(instances, 'depths')
        if centers is None or depths is None:
            raise KeyError('gt_instances_3d needs `centers_2d` and `depths` '
                           '(pack them with Pack3DDetInputs keys '
                           "'centers_2d' and 'depths', and LoadAnnotations3D"
                           '(with_bbox_depth=True))')
        centers = centers.to(device).reshape(-1, 2)
        depths = depths.to(device=device, dtype=torch.float32).reshape(-1)
        labels = _instance_field(instances, 'labels_3d')
        if labels is None:
            labels = torch.full_like(depths, -1, dtype=torch.long)
        labels = labels.to(device).reshape(-1).long()
        if not (centers.shape[0] == depths.shape[0] == labels.shape[0]):
            raise ValueError(
                f'image {img_id}: {centers.shape[0]} centres_2d, '
                f'{depths.shape[0]} depths and {labels.shape[0]} labels_3d; '
                'they must be index-aligned')
        rows, cols, inside = centers_to_cells(centers, stride, feat_hw)
        keep = inside & select_objects(depths, labels, min_depth, max_depth,
                                       ignore_classes)
        all_ids.append(torch.full_like(rows[keep], img_id))
        all_rows.append(rows[keep])
        all_cols.append(cols[keep])
        all_depths.append(depths[keep])
        all_labels.append(labels[keep])
    if len(all_ids) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return ObjectDescriptors(
            feat.new_zeros((0, feat.shape[1])),
            torch.zeros(0, device=device), empty, empty)
    image_ids = torch.cat(all_ids)
    descriptors = gather_pooled_at_cells(feat, image_ids, torch.cat(all_rows),
                                         torch.cat(all_cols), kernel_size)
    return ObjectDescriptors(descriptors, torch.cat(all_depths), image_ids,
                             torch.cat(all_labels))


def gather_across_processes(tensors: Sequence[Tensor]) -> List[Tensor]:
    """Concatenate per-process tensors along dim 0 over all processes.

    Each process may hold a different number of rows: rows are padded to the
    largest count, all-gathered, and the padding is stripped. The calling
    process's own tensor is put back in its slot, so gradients flow to the
    local rows (gathered rows from other processes are constants here; their
    own processes compute their gradients). Every process must call this
    function the same number of times, also when it holds zero rows.

    Args:
        tensors (Sequence[Tensor]): Tensors with the same number of rows.

    Returns:
        list[Tensor]: Gathered tensors in process order; the inputs
        unchanged when not distributed.
    """
    tensors = list(tensors)
    if dist.get_world_size() <= 1:
        return tensors
    rank = dist.get_rank()
    num_rows = tensors[0].shape[0]
    if any(t.shape[0] != num_rows for t in tensors):
        raise ValueError('all tensors must have the same number of rows')
    counts = dist.all_gather(
        torch.tensor([num_rows], dtype=torch.long, device=tensors[0].device))
    counts = [int(c.reshape(-1)[0].item()) for c in counts]
    max_rows = max(max(counts), 1)  # no zero-size collectives
    gathered = []
    for tensor in tensors:
        padded = tensor.new_zeros((max_rows, ) + tuple(tensor.shape[1:]))
        padded[:num_rows] = tensor.detach()
        parts = dist.all_gather(padded)
        parts = [
            part[:count]
            for part, count in zip(parts, counts, strict=True)
        ]
        parts[rank] = tensor
        gathered.append(torch.cat(parts))
    return gathered


def gather_object_descriptors(objects: ObjectDescriptors,
                              num_images: int) -> ObjectDescriptors:
    """:func:`gather_across_processes` for :obj:`ObjectDescriptors`.

    Image ids are offset by the number of images of the preceding processes
    so that they stay unique in the global batch.

    Args:
        objects (:obj:`ObjectDescriptors`): This process's objects.
        num_images (int): This process's batch size.

    Returns:
        :obj:`ObjectDescriptors`: Objects of the global batch; ``objects``
        unchanged when not distributed.
    """
    if dist.get_world_size() <= 1:
        return objects
    device = objects.depths.device
    sizes = dist.all_gather(
        torch.tensor([num_images], dtype=torch.long, device=device))
    sizes = torch.stack([s.reshape(-1)[0] for s in sizes]).to(device)
    offset = sizes[:dist.get_rank()].sum()
    descriptors, depths, image_ids, labels = gather_across_processes([
        objects.descriptors, objects.depths.float(),
        objects.image_ids + offset, objects.labels
    ])
    return ObjectDescriptors(descriptors, depths, image_ids, labels)
