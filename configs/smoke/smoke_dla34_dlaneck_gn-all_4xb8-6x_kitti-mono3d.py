# SMOKE on KITTI (3 classes), mmdet3d's config unchanged except that ddml is
# imported: KittiMetric then computes 3D/BEV/AOS AP on the CPU as well.
_base_ = ['mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py']
custom_imports = dict(imports=['ddml'], allow_failed_imports=False)
