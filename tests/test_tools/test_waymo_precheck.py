"""tools/test.py stops before inference when mmdet3d's WaymoMetric cannot
run here (no Waymo devkit, no bazel-built binary), naming what to install
and the metric that needs neither."""
import pytest

REPO_CONFIG = ('configs/pgd/'
               'pgd_r101_fpn_gn-head_dcn_8xb3-2x_waymoD3-fov-mono3d.py')


def _has_devkit() -> bool:
    try:
        import waymo_open_dataset  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.mark.skipif(_has_devkit(), reason='the Waymo devkit is installed '
                    'here, so WaymoMetric may run')
def test_waymo_metric_without_devkit_stops_before_inference(tmp_path,
                                                            monkeypatch):
    from ddml.engine import launch
    from ddml.engine import test as entry_point
    monkeypatch.chdir(launch.__file__.rsplit('/projects/', 1)[0])
    ckpt = tmp_path / 'unused.pth'
    ckpt.write_bytes(b'')
    built = []
    monkeypatch.setattr(entry_point, 'build_runner',
                        lambda cfg: built.append(1))
    with pytest.raises(RuntimeError) as info:
        entry_point.main([
            REPO_CONFIG, str(ckpt), '--work-dir', str(tmp_path),
            '--cfg-options', 'test_evaluator.type=WaymoMetric'
        ])
    message = str(info.value)
    assert 'waymo-open-dataset' in message
    assert 'compute_detection_metrics_main' in message
    assert 'WaymoMono3DMetric' in message
    assert built == []  # stopped before the Runner (and inference)


def test_ddml_waymo_metric_passes_the_check():
    from mmengine.config import Config

    from ddml.engine import check_evaluator_available
    check_evaluator_available(Config.fromfile(REPO_CONFIG))
