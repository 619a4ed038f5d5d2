# MonoFlex on KITTI, Car only: the 3-class config with one heatmap channel
# and the Car size prior (the release trains the three classes together;
# its Car figures are the target, see the base config).
_base_ = ['./monoflex_dla34_pytorch_dlaneck_gn-all_1xb8-100e_kitti-mono3d.py']

class_names = ['Car']
metainfo = dict(classes=class_names)
model = dict(
    bbox_head=dict(
        num_classes=1,
        bbox_coder=dict(
            base_dims=((3.8840, 1.5261, 1.6286, 0.4259, 0.1367, 0.1022), ))))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = dict(dataset=dict(metainfo=metainfo))
