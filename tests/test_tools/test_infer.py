"""tools/infer.py: pictures and JSON for one's own images.

On a rendered synthetic frame (its KITTI calib file) and on a real KITTI
frame of ``../shared/data`` (``--cam2img`` from its P2), the JSON holds
exactly the boxes of the model's own ``predict`` on the same image, read
through the config's dataset (mmdet3d's ``KittiDataset`` and the test
pipeline), and the picture is the image with boxes drawn on it. The
``ddml_*`` config predicts as its detector, and its checkpoint loads into
the plain config (and the plain one into it). Every monocular config of
configs/ gets its test pipeline's input from :func:`mono_data_info`. A
user's mistake stops with status 2 and one line naming it and the fix.

The model is the demo's MonoDLE with random weights whose heatmap and
depth biases are set so that it returns boxes in front of the camera.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.fileio import dump, load

from ddml.engine.infer import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'demo'
PLAIN_CFG = DEMO / ('monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-'
                    'mono3d.py')
DDML_CFG = DEMO / \
    'ddml_monodle_r18-half_secondfpn_1xb8-1200iter_demo-kitti-mono3d.py'
SMOKE_CFG = DEMO / 'smoke_r18-half_secondfpn_1xb8-1k_demo-kitti-mono3d.py'
BOX_KEYS = ('x', 'y', 'z', 'l', 'h', 'w', 'yaw')


@pytest.fixture(scope='module')
def frame(tmp_path_factory):
    """A rendered demo frame (val split, with infos and calib)."""
    from ddml.data_tools.synthetic_kitti import (DEMO_LAYOUT,
                                                 make_demo_dataset)
    root = tmp_path_factory.mktemp('infer_frame')
    make_demo_dataset(root, 1, 1, seed=5, scale=0.25, workers=1,
                      progress=False, convert=True, layout=DEMO_LAYOUT)
    return dict(root=root,
                image=root / 'training' / 'image_2' / '000001.png',
                calib=root / 'training' / 'calib' / '000001.txt',
                ann_file='kitti_infos_val.pkl')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """The ddml_ demo wrapper with random weights (boxes ahead of the
    camera) and its plain detector's export."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from ddml.models.detectors.depth_discriminative import \
        export_baseline_checkpoint
    from mmdet3d.registry import MODELS
    out = tmp_path_factory.mktemp('infer_ckpt')
    cfg = Config.fromfile(str(DDML_CFG))
    init_default_scope('mmdet3d')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.state_dict()
    state['detector.bbox_head.heatmap.2.bias'].fill_(0.0)  # scores ~0.5
    state['detector.bbox_head.depth.2.bias'][0] = -2.7  # depth ~15 m
    meta = dict(dataset_meta=dict(classes=['Car']))
    wrapper = dict(meta=meta, state_dict=state)
    torch.save(wrapper, str(out / 'ddml.pth'))
    torch.save(export_baseline_checkpoint(wrapper), str(out / 'plain.pth'))
    return dict(ddml=out / 'ddml.pth', plain=out / 'plain.pth', dir=out)


def _predict_with_dataset(config, checkpoint, data_root, ann_file):
    """The model's own ``predict`` on the first frame of ``ann_file``,
    read by the config's dataset and test pipeline."""
    import copy

    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from ddml.analysis.model_eval import load_model
    from mmdet3d.registry import DATASETS
    cfg = Config.fromfile(str(config))
    model, detector = load_model(cfg, str(checkpoint))
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(data_root=str(data_root), ann_file=str(ann_file),
                  test_mode=True)
    dataset = DATASETS.build(ds_cfg)
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([dataset[0]]), False)
        sample = detector.predict(data['inputs'], data['data_samples'])[0]
    inst = sample.pred_instances_3d
    return dict(boxes=inst.bboxes_3d.tensor.tolist(),
                scores=inst.scores_3d.tolist(),
                labels=inst.labels_3d.tolist())


def _infer(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _assert_same_boxes(record, reference, classes=('Car', )):
    boxes = record['boxes']
    assert len(boxes) == len(reference['boxes']) > 0
    for box, row, score, label in zip(boxes, reference['boxes'],
                                      reference['scores'],
                                      reference['labels']):
        assert [box[k] for k in BOX_KEYS] == row[:7]
        assert box['score'] == score
        assert box['label'] == label and box['class'] == classes[label]


def _assert_picture(picture: Path, image: Path):
    import mmcv
    drawn = mmcv.imread(str(picture), channel_order='rgb')
    original = mmcv.imread(str(image), channel_order='rgb')
    assert drawn.shape == original.shape
    # boxes were drawn over the image, which is still there under them
    changed = np.any(drawn != original, axis=-1).mean()
    assert 0.005 < changed < 0.9, changed


def test_synthetic_frame_with_calib(frame, checkpoints, tmp_path, capsys):
    out_dir = tmp_path / 'out'
    printed = _infer([
        PLAIN_CFG, checkpoints['plain'], frame['image'], '--calib',
        frame['calib'], '--out-dir', out_dir, '--score-thr', '0'
    ], capsys)
    assert '000001.png' in printed
    record = json.loads((out_dir / '000001.json').read_text())
    reference = _predict_with_dataset(PLAIN_CFG, checkpoints['plain'],
                                      frame['root'], frame['ann_file'])
    _assert_same_boxes(record, reference)
    info = load(str(frame['root'] / frame['ann_file']))['data_list'][0]
    assert np.allclose(record['cam2img'], info['images']['CAM2']['cam2img'])
    assert record['image_size'] == [310, 94]
    assert record['classes'] == ['Car'] and record['score_thr'] == 0
    assert record['boxes_2d']  # MonoDLE's regressed 2D boxes
    # boxes ahead of the camera, drawn over the image
    assert min(b['z'] for b in record['boxes']) > 3.0
    _assert_picture(out_dir / '000001.png', frame['image'])

    # the score threshold leaves out the boxes below it, nothing else
    thr = float(np.median([b['score'] for b in record['boxes']]))
    _infer([
        PLAIN_CFG, checkpoints['plain'], frame['image'], '--calib',
        frame['calib'], '--out-dir', tmp_path / 'thr', '--score-thr', thr
    ], capsys)
    kept = json.loads((tmp_path / 'thr' / '000001.json').read_text())
    assert kept['boxes'] == [b for b in record['boxes'] if b['score'] >= thr]


def test_ddml_config_predicts_as_its_detector(frame, checkpoints, tmp_path,
                                              capsys):
    """The wrapper config with its checkpoint, the plain config with the
    wrapper's checkpoint and the wrapper config with the plain checkpoint
    all give the plain detector's boxes."""
    runs = {
        'ddml': (DDML_CFG, checkpoints['ddml']),
        'wrapper_ckpt_plain_cfg': (PLAIN_CFG, checkpoints['ddml']),
        'plain_ckpt_ddml_cfg': (DDML_CFG, checkpoints['plain']),
    }
    reference = _predict_with_dataset(PLAIN_CFG, checkpoints['plain'],
                                      frame['root'], frame['ann_file'])
    for name, (config, ckpt) in runs.items():
        _infer([
            config, ckpt, frame['image'], '--calib', frame['calib'],
            '--out-dir', tmp_path / name, '--score-thr', '0'
        ], capsys)
        record = json.loads((tmp_path / name / '000001.json').read_text())
        _assert_same_boxes(record, reference)


def test_real_kitti_frame_with_cam2img(shared_data, checkpoints, tmp_path,
                                       capsys):
    """KITTI frame 000008 with --cam2img from its P2 (fx, fy, cx, cy)."""
    kitti = shared_data / 'mmdet3d_demo' / 'kitti'
    image, p2_file = kitti / '000008.png', kitti / '000008.txt'
    if not image.is_file() or not p2_file.is_file():
        pytest.skip(f'real KITTI frame not available: {image}')
    p2 = np.array([float(v) for v in p2_file.read_text().split()])
    p2 = p2.reshape(4, 4)
    fx, fy, cx, cy = p2[0, 0], p2[1, 1], p2[0, 2], p2[1, 2]
    out_dir = tmp_path / 'out'
    _infer([
        PLAIN_CFG, checkpoints['plain'], image, '--cam2img',
        f'{fx},{fy},{cx},{cy}', '--out-dir', out_dir, '--score-thr', '0'
    ], capsys)
    record = json.loads((out_dir / '000008.json').read_text())
    k = np.eye(4)
    k[:3, :3] = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    assert np.array_equal(record['cam2img'], k)
    assert record['image_size'] == [1242, 375]

    # the reference: an info of the frame (the image where it lies, never
    # copied) read by the config's KittiDataset
    info = dict(
        sample_idx=8,
        images=dict(CAM2=dict(img_path=str(image), cam2img=k.tolist(),
                              lidar2cam=np.eye(4).tolist(), height=375,
                              width=1242)),
        lidar_points=dict(num_pts_feats=4),
        instances=[],
        cam_instances=dict(CAM2=[]))
    ann = tmp_path / 'infos.pkl'
    dump(dict(metainfo=dict(categories=dict(Car=2)), data_list=[info]),
         str(ann))
    reference = _predict_with_dataset(PLAIN_CFG, checkpoints['plain'],
                                      tmp_path, ann)
    _assert_same_boxes(record, reference)
    _assert_picture(out_dir / '000008.png', image)


def test_camera_matrices(frame, tmp_path):
    """--cam2img builds the 4x4 pinhole matrix; --calib reads P2 of a KITTI
    calib file, or a file holding only the matrix (as mmdet3d's
    demo/data/kitti/000008.txt)."""
    from ddml.apis import cam2img_from_calib, cam2img_from_intrinsics
    assert np.array_equal(
        cam2img_from_intrinsics('721.5,720,609.5,172.8'),
        [[721.5, 0, 609.5, 0], [0, 720, 172.8, 0], [0, 0, 1, 0],
         [0, 0, 0, 1]])
    info = load(str(frame['root'] / frame['ann_file']))['data_list'][0]
    p2 = np.array(info['images']['CAM2']['cam2img'])
    assert np.array_equal(cam2img_from_calib(str(frame['calib'])), p2)
    for rows in (3, 4):
        bare = tmp_path / f'p2_{rows}.txt'
        bare.write_text(' '.join(f'{v!r}' for v in p2[:rows].ravel()))
        assert np.array_equal(cam2img_from_calib(str(bare)), p2)
    k = tmp_path / 'k.txt'
    k.write_text('100 0 50\n0 100 20\n0 0 1\n')
    assert np.array_equal(
        cam2img_from_calib(str(k)),
        [[100, 0, 50, 0], [0, 100, 20, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_every_monocular_config_reads_an_image(frame):
    """Each config's own test pipeline takes :func:`mono_data_info`: the
    image, its camera matrix and the dataset's camera key."""
    from ddml.apis import load_config, mono_data_info, mono_test_pipeline
    cam2img = np.array([[180.0, 0, 152.0, 0], [0, 180.0, 43.0, 0],
                        [0, 0, 1, 0], [0, 0, 0, 1]])
    configs = sorted(c for c in (REPO / 'configs').glob('*/*.py')
                     if c.parent.name != '_base_')  # fragments, not models
    assert len(configs) > 30
    for config in configs:
        cfg = load_config(str(config))
        info = mono_data_info(str(frame['image']), cam2img, cfg)
        waymo = 'waymo' in config.name
        assert list(info['images']) == (['CAM_FRONT'] if waymo else ['CAM2'])
        data = mono_test_pipeline(cfg)(info)
        assert data['inputs']['img'].shape[0] == 3, config.name
        meta = data['data_samples'].metainfo
        # Resize3D scales the camera matrix with the image
        resized = any(t['type'] in ('RandomResize3D', 'Resize3D')
                      for t in cfg.test_dataloader.dataset.pipeline)
        scale = data['inputs']['img'].shape[2] / 310 if resized else 1.0
        assert np.allclose(np.asarray(meta['cam2img'])[0, 0], 180.0 * scale,
                           rtol=1e-3), config.name


def test_outputs_named_after_the_images(frame, checkpoints, tmp_path,
                                        capsys):
    """Two images of one name get ``_2``; one --calib serves both."""
    other = tmp_path / 'other'
    other.mkdir()
    copy = other / '000001.png'
    copy.write_bytes(frame['image'].read_bytes())
    out_dir = tmp_path / 'out'
    _infer([
        PLAIN_CFG, checkpoints['plain'], frame['image'], copy, '--calib',
        frame['calib'], '--out-dir', out_dir, '--score-thr', '0.9'
    ], capsys)
    assert sorted(os.listdir(out_dir)) == [
        '000001.json', '000001.png', '000001_2.json', '000001_2.png'
    ]
    a, b = (json.loads((out_dir / n).read_text())
            for n in ('000001.json', '000001_2.json'))
    assert a['boxes'] == b['boxes']
    assert a['image'] != b['image']


# --------------------------------------------------------------- mistakes


def _error(capsys, argv):
    """Run the tool in-process; its exit status and stderr lines."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    return exc.value.code, err.strip().splitlines()


def _one_line(lines, *words):
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith('infer: error: '), line
    assert 'Traceback' not in line
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.fixture(scope='module')
def calibs(tmp_path_factory):
    """Calibration files a user might give by mistake."""
    d = tmp_path_factory.mktemp('calibs')
    (d / 'no_p2.txt').write_text(
        'P0: 1 0 0 0 0 1 0 0 0 0 1 0\nR0_rect: 1 0 0 0 1 0 0 0 1\n')
    (d / 'short_p2.txt').write_text('P2: 721 0 609 0 721 172\n')
    (d / 'words_p2.txt').write_text('P2: a b c d e f g h i j k l\n')
    (d / 'binary.txt').write_bytes(b'\xff\xfe\x00\x01' * 8)
    return d


def test_mistakes_in_paths_and_values(frame, checkpoints, calibs, tmp_path,
                                      capsys):
    img, calib = frame['image'], frame['calib']
    ckpt = checkpoints['plain']
    out = tmp_path / 'out'
    not_image = tmp_path / 'notes.png'
    not_image.write_text('not an image\n')
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    cases = [
        ([tmp_path / 'nope.py', ckpt, img, '--calib', calib, '--out-dir',
          out], ['nope.py', 'no such config']),
        ([str(PLAIN_CFG).replace('1xb8-1200iter', '1xb8-1k'), ckpt, img,
          '--calib', calib, '--out-dir', out],
         ['1xb8-1k', 'was renamed to', PLAIN_CFG.name]),
        ([PLAIN_CFG, tmp_path / 'nope.pth', img, '--calib', calib,
          '--out-dir', out], ['nope.pth', 'no such checkpoint']),
        ([PLAIN_CFG, ckpt, tmp_path / 'nope.png', '--calib', calib,
          '--out-dir', out], ['nope.png', 'no such image']),
        ([PLAIN_CFG, ckpt, not_image, '--calib', calib, '--out-dir', out],
         ['notes.png', 'not an image', 'PNG or JPEG']),
        ([PLAIN_CFG, ckpt, img, '--cam2img', '721,721,609', '--out-dir',
          out], ['--cam2img 721,721,609', '3 value(s), not 4',
                 'fx,fy,cx,cy']),
        ([PLAIN_CFG, ckpt, img, '--cam2img', '721,721,cx,172', '--out-dir',
          out], ['--cam2img', 'not numbers', 'fx,fy,cx,cy']),
        ([PLAIN_CFG, ckpt, img, '--cam2img', '0,721,609,172', '--out-dir',
          out], ['--cam2img', 'positive']),
        ([PLAIN_CFG, ckpt, img, '--calib', tmp_path / 'nope.txt',
          '--out-dir', out], ['--calib', 'nope.txt', 'no such file',
                              '--cam2img']),
        ([PLAIN_CFG, ckpt, img, '--calib', calibs / 'no_p2.txt',
          '--out-dir', out], ['no_p2.txt', 'no P2 line', 'P0, R0_rect',
                              "'P2: '"]),
        ([PLAIN_CFG, ckpt, img, '--calib', calibs / 'short_p2.txt',
          '--out-dir', out], ['short_p2.txt', '6 value(s), not 12']),
        ([PLAIN_CFG, ckpt, img, '--calib', calibs / 'words_p2.txt',
          '--out-dir', out], ['words_p2.txt', 'not numbers']),
        ([PLAIN_CFG, ckpt, img, '--calib', calibs / 'binary.txt',
          '--out-dir', out], ['binary.txt', '--calib']),
        ([PLAIN_CFG, ckpt, img, img, '--calib', calib, calib, calib,
          '--out-dir', out], ['--calib', '3 files for 2 images']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir', a_file],
         ['--out-dir', 'a_file', 'is a file']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir',
          a_file / 'sub'], ['--out-dir', 'is a file (under']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir', out,
          '--cfg-options', 'model.test_cfg.topk'],
         ['--cfg-options', 'not key=value']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir', img.parent],
         ['--out-dir', 'overwrite', 'another folder']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir', out,
          '--score-thr', '1.5'], ['--score-thr', '1.5', '[0, 1]']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir', out,
          '--device', 'gpu7'], ['--device gpu7', 'cpu']),
        ([PLAIN_CFG, ckpt, img, '--out-dir', out],
         ['--calib', '--cam2img', 'required']),
        ([PLAIN_CFG, ckpt, img, '--calib', calib, '--cam2img', '1,1,1,1',
          '--out-dir', out], ['--cam2img', 'not allowed with']),
    ]
    if not torch.cuda.is_available():
        cases.append(([PLAIN_CFG, ckpt, img, '--calib', calib, '--out-dir',
                       out, '--device', 'cuda'],
                      ['--device cuda', 'no CUDA', '--device cpu']))
    for argv, words in cases:
        code, lines = _error(capsys, argv)
        assert code == 2, (argv, lines)
        _one_line(lines, *words)
    assert not out.exists()  # nothing written by a refused command


def test_mistakes_in_config_and_checkpoint(frame, checkpoints, tmp_path,
                                           capsys):
    img, calib = frame['image'], frame['calib']
    out = tmp_path / 'out'
    lidar_cfg = tmp_path / 'lidar.py'
    lidar_cfg.write_text(
        "model = dict(type='VoxelNet')\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadPointsFromFile', coord_type='LIDAR')]))\n")
    broken_cfg = tmp_path / 'broken.py'
    broken_cfg.write_text('model = dict(type=\n')
    text_ckpt = tmp_path / 'notes.pth'
    text_ckpt.write_text('not a checkpoint\n')
    release = tmp_path / 'release.pth'
    torch.save({'epoch': 140, 'model_state': {'a': torch.zeros(1)}},
               str(release))
    state = torch.load(str(checkpoints['plain']), weights_only=True)
    state['state_dict']['bbox_head.heatmap.2.bias'] = torch.zeros(3)
    other = tmp_path / 'other.pth'
    torch.save(state, str(other))
    cases = [
        ([lidar_cfg, checkpoints['plain']],
         ['lidar.py', 'not a monocular', 'LoadImageFromFileMono3D']),
        ([broken_cfg, checkpoints['plain']],
         ['broken.py', 'cannot read the config']),
        ([PLAIN_CFG, text_ckpt], ['notes.pth', 'not a torch checkpoint']),
        ([PLAIN_CFG, release],
         ['release.pth', 'tools/convert_release_checkpoint.py']),
        ([SMOKE_CFG, checkpoints['plain']],
         ['plain.pth', 'does not match the model of', SMOKE_CFG.name,
          'missing', 'the config it was trained with']),
        ([PLAIN_CFG, other],
         ['other.pth', 'bbox_head.heatmap.2.bias', '(3,)', '(1,)']),
    ]
    for (config, ckpt), words in cases:
        code, lines = _error(capsys, [
            config, ckpt, img, '--calib', calib, '--out-dir', out
        ])
        assert code == 2, (config, ckpt, lines)
        _one_line(lines, *words)
    assert not out.exists()


def test_tool_answers_in_one_line(frame, tmp_path):
    """The script itself: one line on stderr (no dependency notices, no
    traceback) and status 2."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable,
        str(REPO / 'tools' / 'infer.py'),
        str(PLAIN_CFG),
        str(tmp_path / 'missing.pth'),
        str(frame['image']), '--cam2img', '721,721,609,172', '--out-dir',
        str(tmp_path / 'out')
    ], capture_output=True, text=True, env=env, cwd=str(REPO))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    _one_line(lines, 'missing.pth', 'no such checkpoint file')
