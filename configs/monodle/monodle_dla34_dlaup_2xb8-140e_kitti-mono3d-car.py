# MonoDLE on KITTI, Car only: the class of the paper's main table and of the
# release's example (writelist: ['Car']).
_base_ = ['./monodle_dla34_dlaup_2xb8-140e_kitti-mono3d.py']

class_names = ['Car']
metainfo = dict(classes=class_names)
model = dict(
    bbox_head=dict(
        num_classes=1,
        bbox_coder=dict(
            mean_sizes=((3.52588311, 1.52563191, 1.62856739), ))))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = dict(dataset=dict(metainfo=metainfo))
