# MonoDLE on KITTI, Car only: the class of the paper's main table and of the
# release's example (writelist: ['Car']).
# Difference from the release: the release's example trains Car only but
# keeps 3 heatmap channels (model.num_class: 3), two of which then only ever
# see negatives; here the heatmap has one channel (expected effect: none on
# the Car peaks beyond their no longer sharing the top 50 with the other two
# channels). A release checkpoint therefore converts to the 3-class config
# (tools/convert_release_checkpoint.py), whose Car AP is the one to read.
_base_ = ['./monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py']

class_names = ['Car']
metainfo = dict(classes=class_names)
model = dict(
    bbox_head=dict(
        num_classes=1,
        # absolute sizes, as the release (meanshape: False); the Car mean
        # (l, h, w) would be (3.52588311, 1.52563191, 1.62856739)
        bbox_coder=dict(mean_sizes=((0., 0., 0.), ))))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = dict(dataset=dict(metainfo=metainfo))
