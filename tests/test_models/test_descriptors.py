"""Object descriptors: pooling, reading at centres, filters, gathering."""
import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet3d', reason='mmdet3d is not installed')

from mmengine.structures import InstanceData  # noqa: E402

from ddml.models.descriptors import (  # noqa: E402
    centers_to_cells, collect_object_descriptors, gather_across_processes,
    gather_object_descriptors, gather_pooled_at_cells, infer_feature_stride,
    pool_descriptor_map, select_objects, ObjectDescriptors)
from ddml.testing import run_in_gloo_processes  # noqa: E402


def _hand_pool(feat, b, r, c, k):
    """k x k mean with zero padding, padded zeros counted, by loops."""
    _, channels, height, width = feat.shape
    total = torch.zeros(channels, dtype=torch.float64)
    for dy in range(-(k // 2), k // 2 + 1):
        for dx in range(-(k // 2), k // 2 + 1):
            y, x = r + dy, c + dx
            if 0 <= y < height and 0 <= x < width:
                total += feat[b, :, y, x].double()
    return (total / (k * k)).float()


def _instances(centers, depths, labels=None):
    inst = InstanceData()
    inst.centers_2d = torch.tensor(centers, dtype=torch.float32).reshape(
        -1, 2)
    inst.depths = torch.tensor(depths, dtype=torch.float32)
    if labels is None:
        labels = [0] * len(depths)
    inst.labels_3d = torch.tensor(labels, dtype=torch.long)
    return inst


@pytest.mark.parametrize('k', [1, 3, 5])
def test_dense_pooling_matches_avgpool2d(k):
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 7, 9)
    ref = nn.AvgPool2d(k, stride=1, padding=k // 2)(feat)
    assert torch.allclose(pool_descriptor_map(feat, k), ref)


def test_gather_at_cells_matches_dense_pooling_and_hand():
    torch.manual_seed(0)
    feat = torch.randn(2, 4, 6, 8)
    # corners, borders and interior cells
    ids = torch.tensor([0, 0, 1, 1, 1, 0])
    rows = torch.tensor([0, 5, 2, 5, 0, 3])
    cols = torch.tensor([0, 7, 4, 0, 7, 1])
    out = gather_pooled_at_cells(feat, ids, rows, cols, 5)
    dense = pool_descriptor_map(feat, 5)[ids, :, rows, cols]
    assert torch.allclose(out, dense, atol=1e-6)
    for n in range(len(ids)):
        hand = _hand_pool(feat, int(ids[n]), int(rows[n]), int(cols[n]), 5)
        assert torch.allclose(out[n], hand, atol=1e-6)
    assert gather_pooled_at_cells(feat, ids[:0], rows[:0], cols[:0]).shape \
        == (0, 4)


def test_even_kernel_rejected():
    with pytest.raises(ValueError, match='odd'):
        pool_descriptor_map(torch.zeros(1, 1, 4, 4), 4)


def test_infer_stride_and_cells():
    assert infer_feature_stride((96, 320), (24, 80)) == (4.0, 4.0)
    assert infer_feature_stride((384, 1280), (48, 160)) == (8.0, 8.0)
    centers = torch.tensor([[0., 0.], [3.99, 7.99], [4., 8.], [319.9, 95.9],
                            [-0.1, 5.], [320., 5.], [5., 96.],
                            [float('nan'), 1.], [float('inf'), 1.]])
    rows, cols, inside = centers_to_cells(centers, (4., 4.), (24, 80))
    assert inside.tolist() == [True, True, True, True, False, False, False,
                               False, False]
    assert rows[:4].tolist() == [0, 1, 2, 23]
    assert cols[:4].tolist() == [0, 0, 1, 79]


def test_collect_descriptors_vs_hand_computation():
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 6, 10)  # stride 4 for a 24x40 input
    gts = [
        _instances([[2., 2.], [21., 9.5]], [10., 20.]),
        _instances([[39.9, 23.9]], [30.]),
    ]
    objs = collect_object_descriptors(feat, gts, (4., 4.), kernel_size=5)
    assert objs.num_objects == 3
    assert objs.image_ids.tolist() == [0, 0, 1]
    assert objs.depths.tolist() == [10., 20., 30.]
    expected = torch.stack([
        _hand_pool(feat, 0, 0, 0, 5),  # (2, 2) -> cell (0, 0)
        _hand_pool(feat, 0, 2, 5, 5),  # (21, 9.5) -> row 2, col 5
        _hand_pool(feat, 1, 5, 9, 5),  # last cell
    ])
    assert torch.allclose(objs.descriptors, expected, atol=1e-6)


def test_collect_descriptors_non_square_stride():
    feat = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    objs = collect_object_descriptors(
        feat, [_instances([[9., 5.]], [5.])], (2., 4.), kernel_size=1)
    # x=9 / 4 -> col 2; y=5 / 2 -> row 2
    assert torch.equal(objs.descriptors, feat[0, :, 2, 2][None])


def test_filters_off_map_depth_range_classes():
    feat = torch.randn(1, 2, 4, 4)
    centers = [[1., 1.], [-1., 1.], [1., 16.], [15., 15.], [1., 1.],
               [1., 1.], [1., 1.], [1., 1.], [1., 1.], [1., 1.]]
    depths = [10., 10., 10., 2., 1.99, 65., 65.01, float('nan'),
              float('inf'), 10.]
    labels = [0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    objs = collect_object_descriptors(
        feat, [_instances(centers, depths, labels)], (4., 4.),
        min_depth=2., max_depth=65., ignore_classes=(2, ))
    # kept: in-map, depth in [2, 65], class not ignored
    assert objs.depths.tolist() == [10., 2., 65.]
    assert objs.labels.tolist() == [0, 0, 1]
    keep = select_objects(torch.tensor([1., 2., 65., 66.]), None, 2., 65.)
    assert keep.tolist() == [False, True, True, False]


def test_empty_images_and_gradients():
    feat = torch.randn(3, 2, 4, 4, requires_grad=True)
    gts = [_instances([], []), _instances([[5., 5.]], [7.]),
           _instances([], [])]
    objs = collect_object_descriptors(feat, gts, (4., 4.))
    assert objs.num_objects == 1 and objs.image_ids.tolist() == [1]
    objs.descriptors.sum().backward()
    assert feat.grad[1].abs().sum() > 0
    assert feat.grad[0].abs().sum() == 0 and feat.grad[2].abs().sum() == 0
    none = collect_object_descriptors(feat[:1], gts[:1], (4., 4.))
    assert none.descriptors.shape == (0, 2)


def test_misaligned_fields_raise():
    # InstanceData itself enforces equal lengths; a dict does not
    inst = dict(centers_2d=torch.ones(2, 2), depths=torch.ones(1) * 5)
    with pytest.raises(ValueError, match='index-aligned'):
        collect_object_descriptors(torch.zeros(1, 1, 4, 4), [inst], (4., 4.))


def test_gather_is_noop_when_not_distributed():
    x = torch.randn(3, 2, requires_grad=True)
    out = gather_across_processes([x, torch.ones(3)])
    assert out[0] is x
    objs = ObjectDescriptors(x, torch.ones(3), torch.zeros(3).long(),
                             torch.zeros(3).long())
    assert gather_object_descriptors(objs, 1) is objs


def _gather(rank, world_size):
    # rank 0 holds 3 objects in 2 images, rank 1 none, rank 2 one.
    counts = [3, 0, 1][rank]
    desc = torch.full((counts, 2), float(rank + 1), requires_grad=True)
    objs = ObjectDescriptors(desc,
                             torch.arange(counts).float() + 10 * rank,
                             torch.tensor([0, 1, 1][:counts],
                                          dtype=torch.long),
                             torch.zeros(counts, dtype=torch.long))
    out = gather_object_descriptors(objs, num_images=2)
    (out.descriptors.sum(1) * torch.arange(
        1., out.num_objects + 1)).sum().backward()
    return (out.descriptors.detach().tolist(), out.depths.tolist(),
            out.image_ids.tolist(), desc.grad.tolist() if counts else [])


def test_gather_across_three_processes_with_uneven_counts():
    results = run_in_gloo_processes(_gather, 3, timeout=60)
    assert sorted(results) == [0, 1, 2]
    for rank, (desc, depths, ids, grad) in results.items():
        assert desc == [[1., 1.]] * 3 + [[3., 3.]]
        assert depths == [0., 1., 2., 20.]
        # image ids offset by 2 images per preceding process
        assert ids == [0, 1, 1, 4]
    # gradient reaches each process's own rows (weights 1..4 by position)
    assert results[0][3] == [[1., 1.], [2., 2.], [3., 3.]]
    assert results[1][3] == []
    assert results[2][3] == [[4., 4.]]
