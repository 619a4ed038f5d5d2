# PGD on KITTI, Car only (the class PGD's README reports).
_base_ = ['./pgd_r101-caffe_fpn_head-gn_4xb3-4x_kitti-mono3d.py']

class_names = ['Car']
metainfo = dict(classes=class_names)
model = dict(
    bbox_head=dict(
        num_classes=1,
        bbox_coder=dict(base_dims=((3.9, 1.56, 1.6), ))))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = dict(dataset=dict(metainfo=metainfo))
