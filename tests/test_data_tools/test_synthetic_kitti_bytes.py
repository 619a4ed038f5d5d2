"""The KITTI-format output of the renderer stays byte-identical.

The confirmatory efficacy run renders its data with
``tools/make_demo_dataset.py``; the renderer is shared with the Waymo
format (issue 22), so a change to it must not move a KITTI byte. The
digests below were recorded with the renderer before that sharing (commit
345e9a1); PNG bytes depend on Pillow and its zlib, labels (occlusion from
rasterised pixels) on Pillow and numpy, so the test skips, saying why,
where those versions differ from the recorded ones. The info files are
left out (they are the converter's, tested with it).
"""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from ddml.data_tools.synthetic_kitti import (CAMERA_HEIGHT, CLASS_PRIORS,
                                             DEMO_LAYOUT, SceneLayout,
                                             SyntheticCamera, kitti_camera,
                                             make_demo_dataset, render_frame)

#: Versions the digests were recorded with.
RECORDED = dict(pillow='13.0.0', zlib='1.2.13', numpy='1.26.4')
#: Layout -> folder -> (files, sha256 over ``path \0 bytes \0`` in path
#: order); 3 train, 1 val, 2 test frames, scale 0.25, seed 7.
DIGESTS = {
    'demo': {
        'image_2': (6, '19831eca18d0761a00d63b90c6bd3c71'
                       '38af98545fb8fb0796bdd6de68551406'),
        'label_2': (6, '4fe73d213453637379b68bd88b8545ab'
                       '4d9d96c6b6fd63ab91731e3a61ca1cbd'),
        'calib': (6, 'ca2371dff125a66369e1e82fd12720fb'
                     '906bb6ce3448139b800ab5b61de2cf88'),
        'ImageSets': (4, '1479fc63f34f439cfb5d65d11743b8ae'
                         '41faac268feb6d14d49a1e0dce713b12'),
    },
    'general': {
        'image_2': (6, 'b7399d305b3bc18312d704262366103213'
                       'bc91aab303924f7a8cd5aa412b19c5'),
        'label_2': (6, 'b7890d1e5c85e5024e4974c04a6fafb186'
                       'afb3b8099d083c12c8965ebd280a10'),
        'calib': (6, 'ca2371dff125a66369e1e82fd12720fb'
                     '906bb6ce3448139b800ab5b61de2cf88'),
        'ImageSets': (4, '1479fc63f34f439cfb5d65d11743b8ae'
                         '41faac268feb6d14d49a1e0dce713b12'),
    },
}
LAYOUTS = dict(demo=DEMO_LAYOUT, general=SceneLayout())


def _versions() -> dict:
    import PIL
    from PIL import features
    return dict(pillow=PIL.__version__, zlib=features.version('zlib'),
                numpy=np.__version__)


def _folder_digest(root: Path, folder: str):
    files = sorted(p for p in root.rglob('*')
                   if p.is_file() and p.parent.name == folder)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b'\0' + p.read_bytes() +
                 b'\0')
    return len(files), h.hexdigest()


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_kitti_bytes_unchanged(layout, tmp_path):
    versions = _versions()
    root = tmp_path / layout
    make_demo_dataset(root, 3, 1, seed=7, scale=0.25, workers=1,
                      progress=False, convert=False,
                      layout=LAYOUTS[layout], num_test=2)
    # ImageSets and calib files depend on numpy's formatting only.
    for folder in ('ImageSets', 'calib'):
        assert _folder_digest(root, folder) == DIGESTS[layout][folder], \
            folder
    checks = dict(label_2=('pillow', 'numpy'),
                  image_2=('pillow', 'zlib', 'numpy'))
    skipped = []
    for folder, needs in checks.items():
        differ = {k: (versions[k], RECORDED[k]) for k in needs
                  if versions[k] != RECORDED[k]}
        if differ:
            skipped.append(f'{folder}: versions (now, recorded) {differ}')
            continue
        assert _folder_digest(root, folder) == DIGESTS[layout][folder], \
            folder
    if skipped:
        print('not compared (recorded with other versions): ' +
              '; '.join(skipped))
        pytest.skip('; '.join(skipped))


def test_kitti_camera_defaults_are_the_kitti_path():
    """The camera parameters the Waymo format sets default to KITTI's, and
    setting them explicitly renders the same frame."""
    cam = kitti_camera(0.25)
    assert cam.projection_key == 'P2' and cam.ground_y == CAMERA_HEIGHT
    np.testing.assert_array_equal(cam.P, cam.calib['P2'])
    explicit = SyntheticCamera(cam.width, cam.height, cam.calib,
                               projection_key='P2', ground_y=CAMERA_HEIGHT)
    for idx in range(3):
        a = render_frame(np.random.default_rng(idx), cam)
        b = render_frame(np.random.default_rng(idx), explicit, SceneLayout(),
                         CLASS_PRIORS)
        np.testing.assert_array_equal(a.image, b.image)
        assert a.objects == b.objects
        # every painted box, on the ground, in id_map order
        assert [bx['visible_pixels'] for bx in a.boxes] == [
            int((a.id_map == i + 1).sum()) for i in range(len(a.boxes))]
        assert all(bx['loc'][1] == CAMERA_HEIGHT for bx in a.boxes)
