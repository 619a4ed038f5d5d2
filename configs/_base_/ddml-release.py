# The loss settings of DDML as its authors released it on MonoDLE
# (mingyuShin/DDML-M3DOD, c378da3), in one place for every ddml-release_*
# config: the quasi-isometric loss in its 'official' form (temperature 10,
# detached target, weight 0.5; K, B and eps are ddml's defaults, which are
# the release's: ddml/models/defaults.py) and the object-wise depth-map head
# at weight 1. A config reads them as {{_base_.ddml_release_qi_loss}} and
# {{_base_.ddml_release_depth_map_head}}; the release's sample rules
# (min_difficulty, skip_aux_on_affine_aug) depend on each config's pipeline
# and stay in the config.
ddml_release_qi_loss = dict(
    mode='official', temperature=10.0, detach_target=True, loss_weight=0.5)
ddml_release_depth_map_head = dict(loss_weight=1.0)
