# SMOKE on KITTI, Car only (the class SMOKE's README reports).
_base_ = ['./smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py']

class_names = ['Car']
metainfo = dict(classes=class_names)
model = dict(
    bbox_head=dict(
        num_classes=1,
        bbox_coder=dict(base_dims=((3.88, 1.63, 1.53), ))))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = dict(dataset=dict(metainfo=metainfo))
