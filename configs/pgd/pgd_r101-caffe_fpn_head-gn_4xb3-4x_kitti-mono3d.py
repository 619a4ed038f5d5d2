# PGD on KITTI (3 classes), mmdet3d's config unchanged except that ddml is
# imported: KittiMetric then computes 3D/BEV/AOS AP on the CPU as well.
_base_ = ['mmdet3d::pgd/pgd_r101-caffe_fpn_head-gn_4xb3-4x_kitti-mono3d.py']
custom_imports = dict(imports=['ddml'], allow_failed_imports=False)
